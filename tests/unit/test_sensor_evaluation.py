"""Detection metrics on hand-made label arrays: F1 as SKAB computes it, delays, false alarms per day."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.tasks.sensor.evaluation import Run, detection_delays, evaluate, false_alarm_count, segments


def run(labels: list[int], predicted: list[int], period_s: float = 1.0) -> Run:
    return Run(np.array(labels), np.array(predicted), 1000.0 + period_s * np.arange(len(labels)))


def test_segments_finds_runs_of_ones() -> None:
    assert segments(np.array([0, 1, 1, 0, 0, 1, 0, 1])) == [(1, 3), (5, 6), (7, 8)]
    assert segments(np.zeros(4)) == []


def test_point_wise_counts_and_skab_f1() -> None:
    report = evaluate([run([0, 0, 1, 1, 1, 1, 0, 0], [0, 1, 0, 1, 1, 1, 1, 0])])
    assert (report.tp, report.fp, report.fn, report.tn) == (3, 2, 1, 2)
    assert report.f1 == pytest.approx(3 / (3 + (2 + 1) / 2))
    assert report.precision == pytest.approx(3 / 5)
    assert report.recall == pytest.approx(3 / 4)
    assert report.far_pct == pytest.approx(50.0)
    assert report.mar_pct == pytest.approx(25.0)


def test_counts_are_summed_over_runs_not_averaged() -> None:
    a = run([1, 1, 0, 0], [1, 1, 0, 0])
    b = run([1, 1, 1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0])
    report = evaluate([a, b])
    assert (report.tp, report.fn) == (2, 6)
    assert report.f1 == pytest.approx(2 / (2 + 6 / 2))


def test_delay_is_time_to_first_detection_inside_each_fault() -> None:
    labels = np.array([0, 1, 1, 1, 1, 0, 0, 1, 1, 1])
    predicted = np.array([0, 0, 0, 1, 1, 1, 0, 0, 0, 0])
    stamps = 10.0 * np.arange(10)
    assert detection_delays(labels, predicted, stamps) == [20.0, None]
    report = evaluate([Run(labels, predicted, stamps)])
    assert report.anomalies == 2 and report.detected == 1
    assert report.mean_delay_s == 20.0


def test_false_alarms_are_predicted_runs_outside_every_fault() -> None:
    labels = np.array([0, 0, 0, 1, 1, 0, 0, 0, 0, 0])
    predicted = np.array([1, 0, 0, 0, 1, 1, 0, 1, 1, 0])
    assert false_alarm_count(labels, predicted) == 2  # the run overlapping the fault is a detection


def test_false_alarms_per_day_use_time_in_normal_operation() -> None:
    # 1 false alarm in 4 normal samples at 6 h spacing = 1 day of normal operation
    report = evaluate([run([0, 0, 1, 0, 0], [1, 0, 0, 0, 0], period_s=21_600.0)])
    assert report.false_alarms == 1
    assert report.false_alarms_per_day == pytest.approx(1.0)


def test_nothing_detected_gives_zero_f1_and_no_delay() -> None:
    report = evaluate([run([0, 1, 1, 0], [0, 0, 0, 0])])
    assert report.f1 == 0.0 and report.mean_delay_s is None and report.detected == 0


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        evaluate([Run(np.zeros(3), np.zeros(4), np.arange(3.0))])
