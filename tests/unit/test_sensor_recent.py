"""The recent-change detector: the device's streaming tracker scores as the fit does, restarts at gaps,
sees a step at once and a slow cycle not at all."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from edge_agent.errors import ManifestError
from edge_agent.tasks.sensor.recent import RecentSpec, parse_recent, recent_tracker, series_deviation, sliding_max

SIZE = 10
SPEC = RecentSpec(30)


def windows_of(series: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(sliding_window_view(series, SIZE, axis=0).transpose(0, 2, 1))


def walk(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, 2)).cumsum(axis=0) * 0.1


def tracked(windows: np.ndarray, gaps: np.ndarray, batch: int) -> np.ndarray:
    tracker = recent_tracker(SPEC, SIZE, 1, windows.shape[2])
    parts = [tracker.score(windows[i : i + batch], gaps[i : i + batch]) for i in range(0, len(windows), batch)]
    return np.concatenate(parts)


@pytest.mark.parametrize("batch", [1, 7, 256])
def test_the_device_tracker_scores_every_window_as_the_fit_does(batch: int) -> None:
    series = walk(500)
    windows = windows_of(series)
    expected = series_deviation(series, SIZE, SPEC)
    got = tracked(windows, np.zeros(len(windows), dtype=bool), batch)
    np.testing.assert_allclose(got, expected, equal_nan=True)
    assert np.isnan(got[: SPEC.span(SIZE) - SIZE]).all() and not np.isnan(got[SPEC.span(SIZE) - SIZE :]).any()


def test_a_gap_restarts_the_reference() -> None:
    windows = windows_of(walk(400))
    gaps = np.zeros(len(windows), dtype=bool)
    gaps[100:110] = True  # the windows that span a gap in the timestamps
    got = tracked(windows, gaps, 64)
    unscored = np.flatnonzero(np.isnan(got[:, 0]))
    after = 110 + SPEC.span(SIZE) - SIZE  # the first window after the gap with a whole span of its own
    assert set(range(100, after)) <= set(unscored.tolist()) and after not in unscored


def test_a_window_that_does_not_follow_on_restarts_the_reference() -> None:
    series = walk(300)
    windows = windows_of(series)
    jumbled = np.concatenate([windows[:150], windows[200:]])  # 50 windows lost without a gap flag
    got = tracked(jumbled, np.zeros(len(jumbled), dtype=bool), 32)
    assert np.isnan(got[150 : 150 + SPEC.span(SIZE) - SIZE]).all()


def test_a_step_stands_out_and_a_slow_cycle_of_large_amplitude_does_not() -> None:
    rng = np.random.default_rng(3)
    rows = 3000
    cycle = 20.0 * np.sin(2 * np.pi * np.arange(rows) / 1000.0)  # 20 x the noise, slow
    noise = np.zeros(rows)
    for i in range(1, rows):  # AR(1): the level wanders, the steps between samples do not
        noise[i] = 0.9 * noise[i - 1] + rng.normal()
    series = (cycle + noise)[:, None]
    normal = series_deviation(series, SIZE, SPEC)[:, 0]
    series[2000:] += 8.0  # within the cycle's range, 8 x the noise's steps
    stepped = series_deviation(series, SIZE, SPEC)[:, 0]
    limit = np.nanquantile(normal, 0.999)
    assert limit < 8.0, "the cycle itself is not a change"
    seen = np.flatnonzero(stepped[2000 - SIZE + 1 :] > limit)
    assert seen.size and seen[0] <= 1, "the step is seen in the first window that holds it"
    held = stepped[2000 - SIZE + 1 : 2000 - SIZE + 1 + 2 * SIZE - 1] > limit
    assert held.mean() > 0.9, "and held for two windows"
    assert not np.any(stepped[2000 + 2 * SIZE + 5 : 2300] > 2 * limit), "then let go"


def test_bad_manifest_fields_are_named() -> None:
    assert parse_recent(None) is None
    assert parse_recent({"reference": 100, "floor": [0.05, 0.2]}) == RecentSpec(100, (0.05, 0.2))
    for bad in ({"floor": 0.1}, {"reference": 1}, {"reference": 50, "floor": [0.1, 0]}, [3]):
        with pytest.raises(ManifestError, match=r"params\.recent"):
            parse_recent(bad)


@pytest.mark.parametrize(("rows", "width"), [(100, 1), (100, 2), (100, 7), (676, 120), (50, 50), (65, 33)])
def test_the_doubling_sliding_maximum_is_the_plain_one(rows: int, width: int) -> None:
    values = np.random.default_rng(rows + width).normal(size=(rows, 3))
    np.testing.assert_array_equal(sliding_max(values, width), sliding_window_view(values, width, axis=0).max(axis=2))
