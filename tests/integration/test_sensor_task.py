"""The sensor task end to end on the shipped model files, loaded with load_model, on every variant."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from prometheus_client import CollectorRegistry

from edge_agent.config import OnnxRuntimeConfig
from edge_agent.errors import DataError, ManifestError
from edge_agent.messages import SensorAnomalyData
from edge_agent.metrics import AgentMetrics
from edge_agent.runtime.registry import load_model
from edge_agent.tasks.base import Item, TaskContext
from edge_agent.tasks.sensor.config import SensorAnomalyTaskConfig
from edge_agent.tasks.sensor.dataio import SensorTable, read_sensor_csv
from edge_agent.tasks.sensor.evaluation import segments
from edge_agent.tasks.sensor.replay import make_task, replay
from edge_agent.tasks.sensor.task import SensorAnomalyTask

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "sensor-anomaly"
DEMO = ROOT / "examples" / "data" / "machine_demo.csv"
CONFIG = SensorAnomalyTaskConfig(kind="sensor_anomaly")
VARIANTS = ["onnx-fp32", "onnx-int8", "tflite-int8"]


@pytest.fixture(scope="module")
def demo() -> tuple[SensorTable, list[str]]:
    table = read_sensor_csv(DEMO)
    kinds = [line.rsplit(",", 1)[1] for line in DEMO.read_text().splitlines()[1:]]
    return table, kinds


@pytest.mark.parametrize("variant", VARIANTS)
def test_demo_faults_raise_debounced_events(variant: str, demo: tuple[SensorTable, list[str]]) -> None:
    table, kinds = demo
    assert table.labels is not None
    result = replay(make_task(MODEL, variant, CONFIG), table.timestamps, table.values)
    kinds_seen = [e.event for e in result.events]
    assert kinds_seen == ["anomaly_start", "anomaly_end"] * (len(kinds_seen) // 2)
    faults = segments(table.labels)
    first_fault = table.timestamps[faults[0][0]]
    starts = [e.details["onset"] for e in result.events if e.event == "anomaly_start"]
    assert starts and min(starts) >= first_fault - 60, "an alarm during the normal first part"
    assert len(starts) <= 2 * len(faults), "a fault must raise a few events, not hundreds"
    caught = {
        kinds[a] for a, b in faults if any(table.timestamps[a] - 60 <= s <= table.timestamps[b - 1] for s in starts)
    }
    assert caught == {"bearing_wear", "overheating", "spikes", "sensor_freeze"}


def test_overheating_names_temperature_first(demo: tuple[SensorTable, list[str]]) -> None:
    table, kinds = demo
    assert table.labels is not None
    result = replay(make_task(MODEL, "onnx-int8", CONFIG), table.timestamps, table.values)
    heat = next((a, b) for a, b in segments(table.labels) if kinds[a] == "overheating")
    first, last = table.timestamps[heat[0]] - 60, table.timestamps[heat[1]]
    end = next(e for e in result.events if e.event == "anomaly_end" and first <= e.details["onset"] <= last)
    assert end.details["top_channels"][0]["channel"] == "temperature"
    assert end.details["peak_score"] > 2 * make_task(MODEL, "onnx-int8", CONFIG).threshold


def _task(metrics: AgentMetrics | None = None) -> SensorAnomalyTask:
    model = load_model(MODEL, None, OnnxRuntimeConfig())
    return SensorAnomalyTask(CONFIG, model, TaskContext("pump", "plant", "dev-1"), metrics)


def _items(table: SensorTable, ends: range, size: int) -> list[Item]:
    return [
        Item(
            table.values[e - size + 1 : e + 1].astype(np.float32),
            float(table.timestamps[e]),
            "test",
            e,
            {"window_start": float(table.timestamps[e - size + 1]), "window_end": float(table.timestamps[e])},
        )
        for e in ends
    ]


def test_results_carry_score_threshold_window_and_metrics(demo: tuple[SensorTable, list[str]]) -> None:
    table, _ = demo
    registry = CollectorRegistry()
    task = _task(AgentMetrics(registry))
    assert task.max_batch == CONFIG.batch_size
    items = _items(table, range(100, 164), task.params.size)
    outputs = [task.logic(d, i) for d, i in zip(task.decode(task.run(task.preprocess(items)), items), items)]
    data = outputs[-1].data
    assert isinstance(data, SensorAnomalyData)
    assert data.threshold == pytest.approx(task.model.manifest.thresholds["score"])
    assert data.window_end.timestamp() == table.timestamps[163]
    assert data.window_start.timestamp() == table.timestamps[163 - task.params.size + 1]
    assert not data.anomalous and 0 < data.score < data.threshold
    assert len(data.top_channels) == CONFIG.top_channels
    assert SensorAnomalyData.model_validate_json(data.model_dump_json()) == data  # the MQTT contract holds
    assert registry.get_sample_value("edge_anomaly_score", {"pipeline": "pump"}) == pytest.approx(data.score)
    assert registry.get_sample_value("edge_anomaly_state", {"pipeline": "pump"}) == 0


def test_frozen_channel_is_named_as_the_cause(demo: tuple[SensorTable, list[str]]) -> None:
    table, _ = demo
    task = _task()
    items = _items(table, range(300, 302), task.params.size)
    items[1].data[:, 3] = items[1].data[-1, 3]  # pressure stuck for the whole window
    decoded = task.decode(task.run(task.preprocess(items)), items)
    assert decoded[0].score < task.threshold < decoded[1].score
    assert decoded[1].top[0][0] == "pressure"


def test_window_of_the_wrong_shape_is_a_data_error() -> None:
    task = _task()
    with pytest.raises(DataError, match=r"has shape \(10, 5\), the model needs \(60, 5\)"):
        task.preprocess([Item(np.zeros((10, 5), np.float32), 0.0, "test", 1)])


def test_set_threshold_knows_score_and_likelihood() -> None:
    task = _task()
    task.set_threshold("score", 7.5)
    assert task.threshold == 7.5
    task.set_threshold("likelihood", 0.99)
    assert task.likelihood_threshold == 0.99
    with pytest.raises(ValueError, match="thresholds 'score' and 'likelihood', not 'iou'"):
        task.set_threshold("iou", 0.5)
    with pytest.raises(ValueError, match="> 0"):
        task.set_threshold("score", -1.0)
    with pytest.raises(ValueError, match=r"must be in \(0.5, 1\)"):
        task.set_threshold("likelihood", 1.5)


def test_manifest_without_normalisation_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(MODEL, broken)
    manifest = yaml.safe_load((broken / "manifest.yaml").read_text())
    del manifest["params"]["normalisation"]
    (broken / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    model = load_model(broken, None, OnnxRuntimeConfig())
    with pytest.raises(ManifestError, match=r"params\.normalisation"):
        SensorAnomalyTask(CONFIG, model, TaskContext("pump", "plant", "dev-1"))
