"""Time settings: durations with units in the task config and at fit, timestamps' spacing, gaps."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent.sources.windowing import Windower, WindowSpec
from edge_agent.tasks.sensor import spacing
from edge_agent.tasks.sensor.config import SensorAnomalyTaskConfig
from edge_agent.tasks.sensor.durations import format_duration, parse_duration, samples_for


@pytest.mark.parametrize(
    ("text", "seconds"), [("20m", 1200.0), ("90s", 90.0), ("1.5h", 5400.0), ("1d", 86400.0), (600, 600.0)]
)
def test_durations_with_units(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_task_config_takes_times_with_units() -> None:
    config = SensorAnomalyTaskConfig.model_validate(
        {"kind": "sensor_anomaly", "min_duration": "2m", "clear_duration": "10m", "adapt": "1d"}
    )
    assert (config.min_duration, config.clear_duration, config.adapt) == (120.0, 600.0, 86400.0)
    with pytest.raises(ValidationError, match="'ten minutes' is not a duration; write seconds or a number with"):
        SensorAnomalyTaskConfig.model_validate({"kind": "sensor_anomaly", "clear_duration": "ten minutes"})


def test_window_in_time_is_resolved_with_the_sample_period() -> None:
    assert samples_for("20m", 60.0, "--window") == 20
    assert samples_for("20m", 300.0, "--window") == 4
    assert samples_for("12", 300.0, "--window") == 12
    assert format_duration(1200.0) == "20m" and format_duration(5400.0) == "1.5h"


def test_irregular_and_gappy_timestamps_are_named() -> None:
    regular = spacing.measure(np.arange(0, 3000, 300.0))
    assert regular.period_s == 300.0 and regular.warning() is None
    stamps = np.concatenate([np.arange(0, 30000, 300.0), np.arange(60000, 90000, 300.0)])
    found = spacing.measure(stamps)
    assert found.gaps == 1 and found.longest_gap_s == 30300.0
    assert found.warning() == (
        "samples are 5m apart (median), but 1 gap(s) longer than 3 samples (longest 8.42h); windows across a gap "
        "are left out of the fit and reset the window on the device"
    )
    assert not spacing.gap_free(stamps, 5, 300.0)[96:100].any()
    assert spacing.gap_free(stamps, 5, 300.0)[:96].all()


def test_run_time_gap_check_and_a_stream_at_another_rate(caplog: pytest.LogCaptureFixture) -> None:
    check = spacing.GapCheck(size=10, period_s=60.0, max_gap=3.0, name="pump")
    starts = np.array([0.0, 60.0, 120.0])
    with caplog.at_level(logging.WARNING):
        mask = check.spans_gap(starts, starts + 540.0, np.array([60.0, 200.0, 240.0]))
    assert mask.tolist() == [False, True, True]
    assert not caplog.records  # the stream's own spacing matches the fit's
    slow = spacing.GapCheck(size=10, period_s=1.0, max_gap=3.0, name="pump")
    with caplog.at_level(logging.WARNING):
        slow.spans_gap(starts, starts + 540.0)
    assert "samples arrive every 1m, the model was fitted on samples 1s apart" in caplog.text


def test_live_windows_report_their_longest_step() -> None:
    windower = Windower(WindowSpec(4, 1, ("a",)), "gateway")
    items = [windower.push(t, np.array([1.0])) for t in (0.0, 1.0, 2.0, 3.0, 10.0)]
    assert items[3] is not None and items[3].meta["max_step"] == 1.0
    assert items[4] is not None and items[4].meta["max_step"] == 7.0  # the task skips this window
