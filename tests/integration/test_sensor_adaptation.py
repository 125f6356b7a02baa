"""Adaptation to drift on the real task: it follows a slow drift, learns nothing while an anomaly is open,
and `rebaseline` relearns the normal levels after maintenance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.tasks.sensor.config import SensorAnomalyTaskConfig
from edge_agent.tasks.sensor.fitting import FitOptions, fit_arrays
from edge_agent.tasks.sensor.replay import ReplayResult, make_task, replay

from .test_sensor_fit_guards import starts, stationary

ADAPT = SensorAnomalyTaskConfig(kind="sensor_anomaly", batch_size=32, adapt="10m")
FIXED = SensorAnomalyTaskConfig(kind="sensor_anomaly", batch_size=32)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    table = stationary(2000, 3, seed=21)
    out = tmp_path_factory.mktemp("adapt") / "pump"
    fit_arrays(table.values, table.channels, out, FitOptions(name="pump"), timestamps=table.timestamps)
    return out


def drifting(rows: int, seed: int, total: float) -> tuple[np.ndarray, np.ndarray]:
    table = stationary(rows, 3, seed=seed)
    table.values[:, 2] += np.linspace(0.0, total, rows)  # a sensor drifting by `total` over the recording
    return table.timestamps, table.values


def test_a_slow_drift_is_followed_with_adaptation_and_alarms_without(model: Path) -> None:
    timestamps, values = drifting(8000, seed=22, total=25.0)
    fixed = replay(make_task(model, "onnx-int8", FIXED), timestamps, values)
    adapted_task = make_task(model, "onnx-int8", ADAPT)
    adapted = replay(adapted_task, timestamps, values)
    assert starts(fixed) >= 1 and fixed.predicted[-1000:].mean() > 0.5
    assert starts(adapted) == 0
    assert adapted_task.params.mean[2] - adapted_task.settings.params.mean[2] > 15.0


def test_nothing_is_learned_while_an_anomaly_is_open(model: Path) -> None:
    table = stationary(5000, 3, seed=23)
    table.values[2000:4000, 1] += 40.0  # a fault lasting over half an hour, much longer than the time constant
    task = make_task(model, "onnx-int8", ADAPT)
    means: list[float] = []
    logic = task.logic

    def watch(decoded, item):  # type: ignore[no-untyped-def]
        means.append(float(task.params.mean[1]))
        return logic(decoded, item)

    task.logic = watch  # type: ignore[method-assign]
    result: ReplayResult = replay(task, table.timestamps, table.values)
    size = task.params.size
    assert starts(result) == 1
    assert result.predicted[2100:4000].all(), "the fault was learned as the new normal"
    during = np.array(means[2100 - size + 1 : 4000 - size + 1])
    assert np.ptp(during) < 0.01 * float(task.params.std[1])  # frozen
    assert np.ptp(np.array(means[: 2000 - size])) > 0  # and it did learn before the fault


def test_rebaseline_relearns_a_new_level_after_maintenance(model: Path) -> None:
    table = stationary(4000, 3, seed=24)
    table.values[1500:, 0] += 40.0  # a recalibrated sensor: a new, permanent level
    task = make_task(model, "onnx-int8", FIXED)
    cut = 1800
    first = replay(task, table.timestamps[:cut], table.values[:cut])
    assert starts(first) >= 1 and first.events[-1].event == "anomaly_end"  # the replay's end closed it
    assert "relearning the normal levels over the next 300 s" in task.rebaseline(300.0)
    back = cut - task.params.size + 1
    rest = replay(task, table.timestamps[back:], table.values[back:])
    assert starts(rest) == 0
    assert task.params.mean[0] - task.settings.params.mean[0] > 30.0
