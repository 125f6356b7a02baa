"""Debounced anomaly decisions: hysteresis, minimum duration, one event pair per fault."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.tasks.sensor.decision import (
    AnomalyState,
    DecisionSettings,
    HysteresisDecider,
    Transition,
    debounce,
    top_shares,
)

CHANNELS = ("vibration", "temperature", "current")
EVEN = np.array([1.0, 1.0, 1.0])


def feed(decider: HysteresisDecider, scores: list[float], contributions: np.ndarray = EVEN) -> list[Transition]:
    events = []
    for t, score in enumerate(scores):
        decision = decider.update(score, contributions, 1000.0 + t)
        if decision.transition is not None:
            events.append(decision.transition)
    return events


def decider(**kwargs: float) -> HysteresisDecider:
    settings = {"threshold": 1.0, "clear_ratio": 0.8, "min_windows": 3, "clear_windows": 3} | kwargs
    return HysteresisDecider(DecisionSettings(**settings), CHANNELS)  # type: ignore[arg-type]


def test_single_noisy_windows_never_raise_an_alarm() -> None:
    d = decider()
    events = feed(d, [0.2, 5.0, 0.2, 9.0, 9.0, 0.1, 0.3, 4.0, 0.2])
    assert events == []
    assert d.state is AnomalyState.NORMAL


def test_sustained_fault_raises_after_min_windows() -> None:
    d = decider()
    states = [d.update(s, EVEN, float(t)).state for t, s in enumerate([0.2, 2.0, 2.0, 2.0, 2.0])]
    assert states == [
        AnomalyState.NORMAL,
        AnomalyState.PENDING,
        AnomalyState.PENDING,
        AnomalyState.ANOMALOUS,
        AnomalyState.ANOMALOUS,
    ]


def test_score_hovering_around_threshold_gives_one_start_and_one_end() -> None:
    hovering = [1.3, 1.2, 1.4, 0.9, 1.1, 0.85, 1.2, 0.9, 0.95, 1.5] * 10  # dips stay above the clear level 0.8
    events = feed(decider(), [0.1] * 5 + hovering + [0.1] * 5)
    assert [e.kind for e in events] == ["anomaly_start", "anomaly_end"]


def test_one_calm_window_inside_a_fault_does_not_end_it() -> None:
    events = feed(decider(), [2.0] * 5 + [0.1, 0.1] + [2.0] * 5 + [0.1] * 3)
    assert [e.kind for e in events] == ["anomaly_start", "anomaly_end"]
    assert events[1].duration_s == 11.0  # from the first abnormal window to the last one


def test_two_separate_faults_give_two_pairs() -> None:
    events = feed(decider(), [2.0] * 4 + [0.1] * 6 + [3.0] * 4 + [0.1] * 3)
    assert [e.kind for e in events] == ["anomaly_start", "anomaly_end"] * 2


def test_events_carry_onset_peak_duration_and_top_channels() -> None:
    d = decider()
    hot = np.array([0.1, 3.0, 0.9])
    events = feed(d, [0.1, 1.5, 2.5, 4.0, 3.0, 0.1, 0.1, 0.1], hot)
    start, end = events
    assert start.kind == "anomaly_start"
    assert start.onset == 1001.0 and start.duration_s == 2.0 and start.peak_score == 4.0
    assert end.peak_score == 4.0 and end.duration_s == 3.0
    assert [name for name, _ in end.top_channels] == ["temperature", "current", "vibration"]
    assert end.top_channels[0][1] == pytest.approx(3.0 / 4.0)
    details = end.details()
    assert details["peak_score"] == 4.0
    assert details["top_channels"][0] == {"channel": "temperature", "contribution": 0.75}


def test_flush_ends_an_open_anomaly_and_is_quiet_otherwise() -> None:
    d = decider()
    assert d.flush(5.0) is None
    feed(d, [2.0] * 4)
    transition = d.flush(2000.0)
    assert transition is not None and transition.kind == "anomaly_end"
    assert d.state is AnomalyState.NORMAL


def test_set_threshold_changes_what_counts_as_abnormal() -> None:
    d = decider()
    d.set_threshold(5.0)
    assert feed(d, [2.0] * 10) == []
    d.set_threshold(1.0)
    assert [e.kind for e in feed(d, [2.0] * 3)] == ["anomaly_start"]


def test_non_finite_scores_do_not_raise_alarms() -> None:
    assert feed(decider(), [float("nan")] * 10) == []


def test_debounce_matches_the_decider() -> None:
    scores = np.array([0.1, 2.0, 2.0, 2.0, 2.0, 0.1, 0.1, 0.1, 0.1])
    out = debounce(scores, DecisionSettings(1.0, 0.8, 3, 3))
    assert out.tolist() == [False, False, False, True, True, True, True, False, False]


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="threshold"):
        DecisionSettings(0.0)
    with pytest.raises(ValueError, match="clear_ratio"):
        DecisionSettings(1.0, clear_ratio=1.5)


def test_top_shares_of_nothing_is_empty() -> None:
    assert top_shares(CHANNELS, np.zeros(3), 2) == []


def test_a_window_far_out_starts_after_two_windows_instead_of_the_minimum_duration() -> None:
    settings = DecisionSettings(threshold=3.09, min_duration_s=60.0, fast_threshold=4.75)
    fast, slow = HysteresisDecider(settings, CHANNELS), HysteresisDecider(settings, CHANNELS)
    started = {}
    for i, (far, near) in enumerate(zip([5.0, 3.5, 3.5] + [3.5] * 70, [4.5] * 73)):
        for name, decider, value in (("fast", fast, far), ("slow", slow, near)):
            if decider.update(value, EVEN, float(i)).transition is not None:
                started.setdefault(name, i)
    assert started == {"fast": 1, "slow": 60}
    lone = HysteresisDecider(settings, CHANNELS)
    assert lone.update(9.0, EVEN, 0.0).transition is None and lone.update(1.0, EVEN, 1.0).transition is None
    with pytest.raises(ValueError, match="fast_threshold"):
        DecisionSettings(threshold=3.09, fast_threshold=3.0)
    lone.set_threshold(5.0)
    assert lone.settings.fast_threshold is None, "a threshold above the fast one turns the fast start off"
