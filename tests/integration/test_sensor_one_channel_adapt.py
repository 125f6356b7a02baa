"""One-channel models adapt by default (fit records a 3-day time constant): a slow normal drift beyond the fit's
range does not alarm, a fault stays an alarm with the levels frozen while it is open, and the config can turn
adaptation off. Several channels record none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.runtime.manifest import load_manifest
from edge_agent.tasks.sensor import fit
from edge_agent.tasks.sensor.config import SensorAnomalyTaskConfig
from edge_agent.tasks.sensor.dataio import SensorTable
from edge_agent.tasks.sensor.fitting import FitOptions, fit_arrays
from edge_agent.tasks.sensor.replay import make_task, replay

from .test_sensor_fit_guards import starts, stationary

PERIOD = 300.0  # 5-minute samples: the drift below spans 28 days
DEFAULTS = SensorAnomalyTaskConfig(kind="sensor_anomaly", batch_size=64)
OFF = SensorAnomalyTaskConfig(kind="sensor_anomaly", batch_size=64, adapt=None)


def series(rows: int, seed: int) -> SensorTable:
    return stationary(rows, 1, seed=seed, period_s=PERIOD)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    table = series(1500, seed=31)
    out = tmp_path_factory.mktemp("one") / "temp"
    fit_arrays(table.values, table.channels, out, FitOptions(name="temp"), timestamps=table.timestamps)
    return out


def test_fit_records_adaptation_for_one_channel_only(model: Path, tmp_path: Path) -> None:
    assert load_manifest(model).params["decision"]["adapt_s"] == 259_200.0
    assert make_task(model, "onnx-int8", DEFAULTS).settings.adapt_s == 259_200.0
    assert make_task(model, "onnx-int8", OFF).settings.adapt_s is None
    three = stationary(1500, 3, seed=32)
    fit_arrays(three.values, three.channels, tmp_path / "m3", FitOptions(name="m3"), timestamps=three.timestamps)
    assert "adapt_s" not in load_manifest(tmp_path / "m3").params["decision"]


def test_fit_sensor_adapt_flag_is_recorded_or_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = series(1500, seed=33)
    csv = tmp_path / "normal.csv"
    csv.write_text(
        "timestamp,t\n" + "".join(f"{s:.0f},{v:.5f}\n" for s, v in zip(table.timestamps, table.values[:, 0]))
    )
    assert fit.main(["--normal", str(csv), "--out", str(tmp_path / "off"), "--adapt", "off"]) == 0
    assert "adapt_s" not in load_manifest(tmp_path / "off").params["decision"]
    assert fit.main(["--normal", str(csv), "--out", str(tmp_path / "h6"), "--adapt", "6h"]) == 0
    assert load_manifest(tmp_path / "h6").params["decision"]["adapt_s"] == 21_600.0
    assert "Adaptation" in (tmp_path / "h6" / "MODEL_CARD.md").read_text(encoding="utf-8")
    capsys.readouterr()
    assert fit.main(["--normal", str(csv), "--out", str(tmp_path / "z"), "--adapt", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --adapt must be a time > 0 (1d), off or auto"


def test_a_slow_normal_drift_beyond_the_fit_range_does_not_alarm_by_default(model: Path) -> None:
    table = series(8000, seed=34)
    table.values[:, 0] += np.linspace(0.0, 20.0, len(table.values))  # ~6 std of the fit data over 28 days
    off = replay(make_task(model, "onnx-int8", OFF), table.timestamps, table.values)
    task = make_task(model, "onnx-int8", DEFAULTS)
    adapted = replay(task, table.timestamps, table.values)
    assert starts(off) >= 1 and off.predicted[-1000:].mean() > 0.5
    assert starts(adapted) == 0
    assert task.params.mean[0] - task.settings.params.mean[0] > 12.0


def test_a_fault_stays_an_alarm_and_the_levels_stay_frozen_while_it_is_open(model: Path) -> None:
    table = series(6000, seed=35)
    table.values[3000:, 0] += 25.0  # a lasting level shift: 10 days, over three time constants
    calm = make_task(model, "onnx-int8", DEFAULTS)
    replay(calm, table.timestamps[:3000], table.values[:3000])  # learning up to the fault
    task = make_task(model, "onnx-int8", DEFAULTS)
    result = replay(task, table.timestamps, table.values)
    assert starts(result) == 1 and result.predicted[3001:].all(), "the fault was learned as the new normal"
    assert abs(float(task.params.mean[0] - calm.params.mean[0])) < 0.05 * float(task.params.std[0])
    assert calm.params.mean[0] != calm.settings.params.mean[0]  # it did learn before the fault
