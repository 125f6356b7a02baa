"""Our reimplementation of NAB's standard-profile score, and the NAB-like generator's labels."""

from __future__ import annotations

import pytest

from bench.sensor_nablike import KINDS, NabCount, make_series, nab_score, nab_windows, sigmoid


def test_windows_are_a_tenth_of_the_length_shared_by_the_anomalies() -> None:
    assert nab_windows(10_000, [5000]) == [(4500, 5500)]
    assert nab_windows(10_000, [3000, 7000]) == [(2750, 3250), (6750, 7250)]
    assert nab_windows(10_000, [5000, 5100]) == [(4750, 5350)]  # overlapping windows merge


def test_earliest_onset_in_a_window_scores_by_position_and_later_ones_nothing() -> None:
    early = nab_score(10_000, [5000], [4500, 4600, 5400])
    assert early.raw == pytest.approx(sigmoid(-1.0)) and early.caught == 1 and early.false_onsets == 0
    assert nab_score(10_000, [5000], [5500]).raw == pytest.approx(0.0)
    assert nab_score(10_000, [5000], [5000]).raw == pytest.approx(sigmoid(-0.5))


def test_missed_window_costs_one_and_false_onsets_cost_about_a_ninth() -> None:
    assert nab_score(10_000, [5000], []).raw == -1.0
    before = nab_score(10_000, [5000], [2000])  # before any window: the full false-positive weight
    assert before.raw == pytest.approx(-1.0 - 0.11)
    far_after = nab_score(10_000, [5000], [9900])
    assert -1.0 - 0.11 < far_after.raw < -1.0 - 0.10
    just_after = nab_score(10_000, [5000], [5510])
    assert -1.0 - 0.01 < just_after.raw < -1.0
    assert nab_score(10_000, [5000], [100]).raw == -1.0  # the probation (fit) part is not scored


def test_normalised_score_is_100_when_perfect_and_0_when_never_alarming() -> None:
    perfect, silent = NabCount(), NabCount()
    perfect.add(nab_score(10_000, [3000, 7000], [2750, 6750]))
    silent.add(nab_score(10_000, [3000, 7000], []))
    assert perfect.normalised() == pytest.approx(100.0)
    assert silent.normalised() == pytest.approx(0.0)


def test_generator_is_seeded_and_labels_anomalies_after_the_fit_part() -> None:
    a, b = make_series(3, 7), make_series(3, 7)
    assert (a.values == b.values).all() and a.starts == b.starts
    assert 3000 <= len(a.values) <= 20_000
    assert all(s > 0.15 * len(a.values) for s in a.starts) and set(a.kinds) <= set(KINDS)
    assert not (make_series(4, 7).values[:100] == a.values[:100]).all()
