"""The recent-change detector through `fit sensor` and the device's task, on one-channel streams: on by
default, its calibrated meaning on normal data, a level shift inside the normal range caught within a few
samples (the window model alone takes far longer), and gaps that neither break nor alarm it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.runtime.manifest import load_manifest
from edge_agent.tasks.sensor import fit
from edge_agent.tasks.sensor.config import SensorAnomalyTaskConfig
from edge_agent.tasks.sensor.dataio import SensorTable, write_sensor_csv
from edge_agent.tasks.sensor.replay import make_task, replay

CONFIG = SensorAnomalyTaskConfig(kind="sensor_anomaly", batch_size=256)
START = 1_767_600_000.0
PERIOD = 300.0  # 5-minute samples, as many univariate streams have


def wandering(rows: int, seed: int) -> SensorTable:
    """One channel: AR(1) noise whose level wanders, over a daily cycle of about twice its spread."""
    rng = np.random.default_rng(seed)
    values = np.zeros(rows)
    for i in range(1, rows):
        values[i] = 0.9 * values[i - 1] + rng.normal()
    values += 5.0 * np.sin(2 * np.pi * np.arange(rows) * PERIOD / 86_400.0)
    return SensorTable(START + PERIOD * np.arange(rows), values[:, None] + 50.0, ["load"])


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same 3 days of normal data fitted with the defaults and with --recent-test off."""
    root = tmp_path_factory.mktemp("recent")
    csv = write_sensor_csv(root / "normal.csv", wandering(864, seed=1))
    out = {}
    for name, extra in (("default", []), ("off", ["--recent-test", "off"])):
        out[name] = root / name
        assert fit.main(["--normal", str(csv), "--out", str(out[name]), *extra]) == 0
    return out


def likelihoods(model: Path, table: SensorTable) -> tuple[np.ndarray, np.ndarray]:
    """Every window's likelihood (windows across a gap included) and the debounced state per sample."""
    result = replay(make_task(model, "onnx-int8", CONFIG), table.timestamps, table.values)
    return result.likelihood[~np.isnan(result.likelihood)], result.predicted


def test_one_channel_models_have_the_detector_by_default(models: dict[str, Path]) -> None:
    params = load_manifest(models["default"]).params
    assert params["recent"]["reference"] == 100 and params["fit"]["recent_test"] is True
    assert len(params["calibration"]["recent_loc"]) == 1
    assert "recent" not in load_manifest(models["off"]).params
    assert params["decision"]["fast_likelihood"] == 0.999999
    assert make_task(models["default"], "onnx-int8", CONFIG).decider.settings.fast_threshold is not None
    plain = SensorAnomalyTaskConfig(kind="sensor_anomaly", fast_likelihood=None)
    assert make_task(models["default"], "onnx-int8", plain).decider.settings.fast_threshold is None
    assert "Recent-change test" in (models["default"] / "MODEL_CARD.md").read_text()
    assert "Recent-change test" not in (models["off"] / "MODEL_CARD.md").read_text()


def test_a_threshold_of_0_99_gives_about_1_percent_on_normal_data(models: dict[str, Path]) -> None:
    shares, alarmed = [], []
    for seed in (2, 5, 6):  # three weeks each; one of them holds a 4.1-sigma step (the fit's largest: 3.6)
        likelihood, predicted = likelihoods(models["default"], wandering(6000, seed=seed))
        shares.append(np.mean(likelihood > 0.99))
        alarmed.append(np.mean(predicted))
    assert 0.005 < np.mean(shares) < 0.03, f"shares of normal windows above 0.99: {shares}"
    assert np.mean(alarmed) < 0.005, f"shares of normal samples in alarm: {alarmed}"


def test_a_level_shift_inside_the_normal_range_is_caught_within_a_few_samples(models: dict[str, Path]) -> None:
    table = wandering(3000, seed=3)
    table.values[2000:, 0] += 8.0  # 8 x the noise's steps, within the daily cycle's range
    delays = {}
    for name, model in models.items():
        _, predicted = likelihoods(model, table)
        caught = np.flatnonzero(predicted[2000:])
        delays[name] = int(caught[0]) if caught.size else len(table.values) - 2000
        assert predicted[:2000].sum() == 0, f"{name}: an alarm before the shift"
    assert delays["default"] <= 5, delays  # a step this far out starts after two windows (fast_likelihood)
    assert delays["off"] > 3 * delays["default"], delays


def test_gaps_neither_break_the_detector_nor_raise_alarms(models: dict[str, Path]) -> None:
    table = wandering(4000, seed=4)
    keep = np.ones(len(table.values), dtype=bool)
    for start in (700, 1500, 1530, 2600):
        keep[start : start + 8] = False  # 40-minute drop-outs
    gappy = SensorTable(table.timestamps[keep], table.values[keep], table.channels)
    likelihood, predicted = likelihoods(models["default"], gappy)
    assert np.isfinite(likelihood).all() and predicted.sum() == 0


def test_windows_further_apart_than_their_length_turn_the_detector_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    csv = write_sensor_csv(tmp_path / "normal.csv", wandering(864, seed=1))
    assert fit.main(["--normal", str(csv), "--out", str(tmp_path / "m"), "--stride", "30"]) == 0
    with caplog.at_level("WARNING", logger="edge_agent.tasks.sensor.task"):
        task = make_task(tmp_path / "m", "onnx-int8", CONFIG)
    assert task.recent is None and "the recent-change test is off" in caplog.text
