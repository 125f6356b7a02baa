"""`edge-agent fit sensor` cannot produce a broken model, and its time settings reach the device's task.

Every fitted folder here is loaded with onnxruntime and replayed through the real task.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from edge_agent.config import OnnxRuntimeConfig
from edge_agent.errors import ManifestError
from edge_agent.runtime.manifest import load_manifest
from edge_agent.runtime.registry import load_model
from edge_agent.tasks.base import TaskContext
from edge_agent.tasks.sensor import fit
from edge_agent.tasks.sensor.config import SensorAnomalyTaskConfig
from edge_agent.tasks.sensor.dataio import SensorTable, write_sensor_csv
from edge_agent.tasks.sensor.replay import ReplayResult, make_task, replay
from edge_agent.tasks.sensor.settings import sensor_settings
from edge_agent.tasks.sensor.task import SensorAnomalyTask

CONFIG = SensorAnomalyTaskConfig(kind="sensor_anomaly", batch_size=256)
START = 1_767_600_000.0


def stationary(rows: int, channels: int, seed: int, period_s: float = 1.0) -> SensorTable:
    """AR(1) noise on every channel, a slow cycle on the first, the second following the first."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(rows, channels))
    values = np.zeros((rows, channels))
    for i in range(1, rows):
        values[i] = 0.9 * values[i - 1] + noise[i]
    values[:, 0] += 3.0 * np.sin(2 * np.pi * np.arange(rows) / 300.0)
    if channels > 1:
        values[:, 1] += 0.5 * values[:, 0]
    return SensorTable(START + period_s * np.arange(rows), values + 20.0, [f"c{i}" for i in range(channels)])


Fit = Callable[..., tuple[Path, str]]


@pytest.fixture
def fitted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Fit:
    """Fit through the CLI; the callable returns the folder and what the fit printed to stderr."""

    def fit_table(table: SensorTable, *extra: str, name: str = "m") -> tuple[Path, str]:
        csv = write_sensor_csv(tmp_path / f"{name}.csv", table)
        out = tmp_path / name
        code = fit.main(["--normal", str(csv), "--out", str(out), *extra])
        err = capsys.readouterr().err
        assert code == 0, err
        return out, err

    return fit_table


def run(model: Path, table: SensorTable, config: SensorAnomalyTaskConfig = CONFIG) -> ReplayResult:
    return replay(make_task(model, "onnx-int8", config), table.timestamps, table.values)


def starts(result: ReplayResult) -> int:
    return sum(event.event == "anomaly_start" for event in result.events)


def test_onnx_only_fit_by_default_with_likelihood_and_no_tflite(fitted: Fit) -> None:
    model, err = fitted(stationary(1500, 3, seed=1))
    manifest = load_manifest(model)
    assert set(manifest.files) == {"onnx-fp32", "onnx-int8"} and not (model / "model.int8.tflite").exists()
    assert manifest.thresholds["likelihood"] == 0.999 and manifest.thresholds["score"] > 1.0
    assert manifest.params["sampling"] == {"period_s": 1.0, "gap_factor": 3.0}
    assert "fast_likelihood" not in manifest.params["decision"] and "recent" not in manifest.params  # 3 channels
    assert "warning" not in err


def test_a_threshold_of_0_99_gives_about_1_percent_on_normal_data(fitted: Fit) -> None:
    model, _ = fitted(stationary(3000, 4, seed=2))
    fresh = stationary(8000, 4, seed=3)
    result = replay(make_task(model, "onnx-int8", CONFIG), fresh.timestamps, fresh.values)
    likelihood = result.likelihood[~np.isnan(result.likelihood)]
    share = np.mean(likelihood > 0.99)
    assert 0.004 < share < 0.03, f"{share:.4f} of normal windows above 0.99"
    assert starts(result) == 0


def test_constant_channel_gets_a_floor_and_a_warning_never_a_zero_threshold(fitted: Fit) -> None:
    table = stationary(1500, 2, seed=4)
    table.values[:, 1] = 5.0
    model, err = fitted(table)
    assert "warning: channel c1 is constant (5) in the normal data: any change from that value will score" in err
    assert load_manifest(model).thresholds["score"] > 0
    quiet = stationary(3000, 2, seed=5)
    quiet.values[:, 1] = 5.0
    assert starts(run(model, quiet)) == 0
    quiet.values[2000:, 1] = 5.5  # the constant channel moves
    assert starts(run(model, quiet)) == 1


def test_a_flat_series_fits_and_runs(fitted: Fit) -> None:
    table = stationary(800, 1, seed=6)
    table.values[:] = 42.0
    model, err = fitted(table)
    assert "channel c0 is constant" in err
    task = make_task(model, "onnx-int8", CONFIG)  # the device's task accepts it
    assert task.threshold > 0
    assert starts(replay(task, table.timestamps, table.values)) == 0


def test_window_not_above_latent_is_clamped_with_a_message(fitted: Fit) -> None:
    model, err = fitted(stationary(2000, 1, seed=7), "--window", "12", "--latent", "16")
    assert "latent 16 is not well below window x channels = 12 x 1 = 12" in err and "using latent 6" in err
    assert load_manifest(model).params["fit"]["latent"] == 6
    fresh = run(model, stationary(5000, 1, seed=8))
    assert np.mean(fresh.predicted) < 0.01  # not in alarm forever


def test_upper_case_name_is_lowered_with_a_note(fitted: Fit) -> None:
    model, err = fitted(stationary(600, 2, seed=9), name="Pump-7")
    assert "note: model name 'Pump-7' lower-cased to 'pump-7'" in err
    assert load_manifest(model).name == "pump-7"


def test_times_with_units_and_gappy_timestamps(fitted: Fit) -> None:
    table = stationary(3000, 2, seed=10, period_s=300.0)
    table.timestamps[1500:] += 86_400.0  # a day without data in the middle
    extra = ("--window", "2h", "--min-duration", "30m", "--clear-duration", "2h")
    model, err = fitted(table, *extra)
    assert "warning: m.csv: samples are 5m apart (median), but 1 gap(s) longer than 3 samples (longest 1d)" in err
    manifest = load_manifest(model)
    assert manifest.params["window"]["size"] == 24 and manifest.params["fit"]["window"] == "2h"
    assert manifest.params["decision"] == {"min_duration_s": 1800.0, "clear_duration_s": 7200.0}
    task = make_task(model, "onnx-int8", CONFIG)
    assert (task.decider.settings.min_duration_s, task.decider.settings.clear_duration_s) == (1800.0, 7200.0)
    fresh = stationary(2000, 2, seed=11, period_s=300.0)
    fresh.timestamps[1000:] += 3600.0  # an hour's gap: the 23 windows across it publish nothing
    logic = task.logic
    skipped: list[int] = []

    def count(decoded, item):  # type: ignore[no-untyped-def]
        output = logic(decoded, item)
        if output.data is None:
            skipped.append(item.index)
        return output

    task.logic = count  # type: ignore[method-assign]
    assert starts(replay(task, fresh.timestamps, fresh.values)) == 0
    assert skipped == list(range(1000 - 23, 1000))  # exactly the 23 windows that join both sides of the gap


def test_check_refuses_what_run_would_refuse(fitted: Fit) -> None:
    model, _ = fitted(stationary(600, 2, seed=12))
    manifest = yaml.safe_load((model / "manifest.yaml").read_text())
    manifest["thresholds"]["score"] = 0.0
    (model / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(ManifestError, match=r"thresholds\.score is 0, it must be > 0"):
        sensor_settings(CONFIG, load_manifest(model))
    loaded = load_model(model, None, OnnxRuntimeConfig())
    with pytest.raises(ManifestError, match=r"thresholds\.score is 0"):
        SensorAnomalyTask(CONFIG, loaded, TaskContext("pump", "plant", "dev-1"))
    del manifest["params"]["calibration"]
    manifest["thresholds"]["score"] = 2.0
    (model / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    config = CONFIG.model_copy(update={"decide_on": "likelihood"})
    with pytest.raises(ManifestError, match="has no likelihood calibration"):
        sensor_settings(config, load_manifest(model))
    assert sensor_settings(CONFIG, load_manifest(model)).decide_on == "score"  # an older model still runs
    task = SensorAnomalyTask(CONFIG, load_model(model, None, OnnxRuntimeConfig()), TaskContext("p", "s", "d"))
    task.validate_model()  # what `edge-agent check` calls after building the task


@pytest.mark.slow  # 52 channels: about a minute on an idle core (the unit tests cover the combination itself)
def test_one_faulty_channel_among_many_raises_the_alarm(fitted: Fit) -> None:
    model, _ = fitted(stationary(3000, 52, seed=13))
    fresh = stationary(4000, 52, seed=14)
    fresh.values[2500:3300, 7] += 12.0  # one channel of 52 offset by ~5 of its std: the mean error barely moves
    likelihood = run(model, fresh)
    raw = run(model, fresh, CONFIG.model_copy(update={"decide_on": "score"}))
    assert starts(likelihood) == 1 and likelihood.predicted[2600:3300].mean() > 0.9
    assert not likelihood.predicted[:2500].any()
    assert starts(raw) == 0  # the mean over 52 channels stays under its threshold
