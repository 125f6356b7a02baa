"""`edge-agent fit sensor` on synthetic normal data: the fitted folder loads and flags injected faults."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from edge_agent.runtime.manifest import load_manifest
from edge_agent.tasks.sensor import fit, synth
from edge_agent.tasks.sensor.config import SensorAnomalyTaskConfig
from edge_agent.tasks.sensor.dataio import write_sensor_csv
from edge_agent.tasks.sensor.evaluation import Run, evaluate
from edge_agent.tasks.sensor.replay import make_task, replay

HAS_TF = importlib.util.find_spec("tensorflow") is not None


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fit")
    normal = write_sensor_csv(root / "normal.csv", synth.generate(3 * 3600, seed=11, faults=[]))
    out = root / "pump-7"
    argv = ["--normal", str(normal), "--out", str(out), "--window", "30"]
    assert fit.main(argv if HAS_TF else [*argv, "--no-tflite"]) == 0
    return out


def test_fit_writes_a_complete_model_folder(fitted: Path) -> None:
    manifest = load_manifest(fitted)
    assert manifest.name == "pump-7" and manifest.task == "sensor_anomaly"
    assert manifest.default_variant == "onnx-int8"
    assert {"onnx-fp32", "onnx-int8"} <= set(manifest.files)
    assert manifest.inputs[0].layout == "NTC" and manifest.inputs[0].shape == [None, 30, 5]
    assert manifest.params["window"] == {"size": 30, "stride": 1}
    assert manifest.params["channels"] == list(synth.CHANNELS)
    assert len(manifest.params["normalisation"]["std"]) == 5
    assert manifest.thresholds["score"] > 1.0
    assert "Threshold" in (fitted / "MODEL_CARD.md").read_text()


@pytest.mark.parametrize("variant", ["onnx-fp32", "onnx-int8"])
def test_fitted_model_flags_faults_and_stays_quiet_on_normal_data(fitted: Path, variant: str) -> None:
    faults = [
        synth.Fault("overheating", 1500, 900),
        synth.Fault("bearing_wear", 3300, 900),
        synth.Fault("sensor_freeze", 5100, 300, "pressure"),
    ]
    table = synth.generate(6000, seed=12, faults=faults)
    assert table.labels is not None
    config = SensorAnomalyTaskConfig(kind="sensor_anomaly")
    result = replay(make_task(fitted, variant, config), table.timestamps, table.values)
    report = evaluate([Run(table.labels, result.predicted, table.timestamps)])
    assert report.detected == 3
    assert report.false_alarms <= 1
    assert not np.any(result.predicted[:1400])


@pytest.mark.skipif(not HAS_TF, reason="the TFLite export needs tensorflow-cpu (the train extra)")
def test_tflite_variant_agrees_with_fp32(fitted: Path) -> None:
    table = synth.generate(1800, seed=13, faults=[synth.Fault("overheating", 600, 900)])
    config = SensorAnomalyTaskConfig(kind="sensor_anomaly")
    ref = replay(make_task(fitted, "onnx-fp32", config), table.timestamps, table.values)
    lite = replay(make_task(fitted, "tflite-int8", config), table.timestamps, table.values)
    assert np.mean(ref.predicted == lite.predicted) > 0.95
