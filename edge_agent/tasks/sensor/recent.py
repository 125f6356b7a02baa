"""The recent-change detector: steps between samples against the typical step of the samples just before them.

The window model compares a window with the normal data of the fit; a level shift or a spike that
stays inside the normal range, on a series whose level wanders (CPU load, traffic, a daily cycle), is
hard for it to see early. This detector works on first differences, which a daily cycle or a slow
wander barely moves but a level shift or a spike moves at once: per channel, the largest |step|
over the last HOLD windows, divided by the typical |step| of the `reference` samples before them
(in units of the channel's normal std; each reference step clipped and the scale floored, both from
the normal data's own step spread, so a few large steps or a calm stretch move it little). Its log is
calibrated on the normal fit data like the reconstruction errors, so it joins the likelihood as one
more test per channel.
A step stays in view for HOLD windows, longer than the default debounce of one window span.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edge_agent.errors import ManifestError

MAD_SCALE = 1.4826  # MAD -> std for normal data
FLOOR = 0.05  # normalised units: a reference that sits still has at least 5% of the normal std as its scale
CLIP = 3.0  # a reference step counts at most 3 x the normal step spread: one spike barely moves the scale
STEP_FLOOR = 0.5  # and the scale at least half the steps' spread over the whole normal data, so that a calm
# stretch (a quantised or idle signal) does not make an ordinary step look rare
MEAN_TO_STD = 1.2533141373155  # sqrt(pi / 2): mean |x| -> std for normal steps
REFERENCE_WINDOWS = 5  # default reference: five window lengths of steps before the tested ones
HOLD = 2  # windows of steps tested: a step stays in view this many window spans


@dataclass(frozen=True)
class RecentSpec:
    """How many samples before the tested stretch form its reference, and the floor of its scale per channel."""

    reference: int
    floor: tuple[float, ...] = (FLOOR,)
    clip: tuple[float, ...] | None = None  # reference steps count at most this much each (None: unclipped)

    def span(self, size: int) -> int:
        """Samples a window's test needs: the reference, then HOLD windows ending with the window."""
        return self.reference + HOLD * size

    def to_manifest(self) -> dict[str, Any]:
        clip = {} if self.clip is None else {"clip": [float(f"{v:.6g}") for v in self.clip]}
        return {"reference": self.reference, "floor": [float(f"{v:.6g}") for v in self.floor], **clip}


def parse_recent(raw: Any) -> RecentSpec | None:
    """params.recent of a manifest, or None when the model has no recent-change detector."""
    if raw is None:
        return None
    try:
        assert isinstance(raw, Mapping)
        floor = tuple(float(v) for v in np.atleast_1d(np.asarray(raw.get("floor", FLOOR))))
        clip = raw.get("clip")
        clipped = None if clip is None else tuple(float(v) for v in np.atleast_1d(np.asarray(clip)))
        spec = RecentSpec(int(raw["reference"]), floor, clipped)
    except (AssertionError, KeyError, TypeError, ValueError) as exc:
        raise ManifestError("params.recent must be {reference: samples >= 3, floor: numbers > 0}") from exc
    if spec.reference < 3 or not all(v > 0 and np.isfinite(v) for v in spec.floor + (spec.clip or ())):
        raise ManifestError(f"params.recent must have reference >= 3 and floor > 0, got {dict(raw)}")
    return spec


def fitted_spec(normalised: np.ndarray, reference: int) -> RecentSpec:
    """The spec for a normal series (L x C): the scale floor and the clip of reference steps per channel,
    from the spread of all its steps (1.4826 MAD)."""
    steps = np.diff(normalised, axis=0)
    spread = MAD_SCALE * np.median(np.abs(steps - np.median(steps, axis=0)), axis=0)
    floor = np.maximum(STEP_FLOOR * spread, FLOOR)
    clip = CLIP * np.maximum(spread, floor)
    return RecentSpec(reference, tuple(float(v) for v in floor), tuple(float(v) for v in clip))


def sliding_max(values: np.ndarray, width: int) -> np.ndarray:
    """(L - width + 1) x C maxima of every `width` consecutive rows of L x C values, by doubling: log2(width)
    passes over contiguous rows instead of a reduction along a strided axis (10x faster here)."""
    span, out = 1, values
    while 2 * span <= width:
        out = np.maximum(out[:-span], out[span:])  # row i: the max of rows i .. i + 2 * span - 1
        span *= 2
    result: np.ndarray = np.maximum(out[: len(values) - width + 1], out[width - span : len(values) - span + 1])
    return result


def deviation_at(series: np.ndarray, ends: np.ndarray, spec: RecentSpec, hold: int) -> np.ndarray:
    """len(ends) x C: for the span of samples ending just before each index in `ends` (exclusive, each at
    least reference + hold), the largest |step| of its last `hold` steps over the mean |step| of the
    reference's steps, scaled to a std (x sqrt(pi/2)) and floored.

    Sums of |step| come from one cumulative sum over the series and the largest from one sliding
    maximum, so a window costs the same whatever the reference's length (a median/MAD per window cost
    33 ms per batch of 256 five-channel windows with a 300-sample reference).
    """
    size = np.abs(np.diff(series, axis=0))  # step j joins samples j and j+1
    counted = size if spec.clip is None else np.minimum(size, np.asarray(spec.clip))
    totals = np.concatenate([np.zeros((1, series.shape[1])), np.cumsum(counted, axis=0)])
    first = ends - hold - spec.reference  # the span's first sample
    tested = ends - hold - 1  # its first tested step
    level = (totals[tested] - totals[first]) / (spec.reference - 1)
    scale = np.maximum(MEAN_TO_STD * level, np.asarray(spec.floor))
    # Many positions (the fit, a batch): one sliding maximum over the series; a few (one window): only theirs.
    if 4 * len(ends) >= len(series):
        largest = sliding_max(size, hold)[tested]
    else:
        largest = sliding_window_view(size, hold, axis=0)[tested].max(axis=2)
    out: np.ndarray = largest / scale
    return out


def series_deviation(series: np.ndarray, size: int, spec: RecentSpec, valid: np.ndarray | None = None) -> np.ndarray:
    """Deviation of every stride-1 window of a normalised series (L x C), NaN where the span is incomplete.

    `valid` marks the stretches of span samples (by first sample) that hold no gap; the others are NaN too.
    """
    count = len(series) - size + 1
    out = np.full((max(count, 0), series.shape[1]), np.nan)
    span = spec.span(size)
    first_scored = span - size  # window k ends at k + size - 1; its span starts at k + size - span
    if count <= first_scored:
        return out
    ends = np.arange(first_scored, count) + size
    out[first_scored:] = deviation_at(series, ends, spec, HOLD * size)
    if valid is not None:
        usable = np.zeros(count, dtype=bool)
        usable[first_scored:] = valid[: count - first_scored]
        out[~usable] = np.nan
    return out


SpanTest = Callable[[np.ndarray, np.ndarray], np.ndarray]


class SpanTracker:
    """The device side of a test on the last span of samples: keeps them and scores each window.

    Windows are taken as consecutive when their overlap matches the previous window's (stride below
    the window) or when no gap lies between them; a gap, or a window that does not follow on, starts
    the reference over, so data from both sides of a gap are never compared.
    """

    def __init__(self, size: int, stride: int, channels: int, need: int, test: SpanTest) -> None:
        self.size = size
        self.stride = stride
        self.need = need  # samples a window's test needs, ending with the window
        self.test = test  # len(ends) x C test values of the spans of a series ending just before each end
        self._history = np.zeros((0, channels))
        self._last: np.ndarray | None = None

    def reset(self) -> None:
        self._history = self._history[:0]
        self._last = None

    def _follows(self, scaled: np.ndarray, gaps: np.ndarray) -> np.ndarray:
        """Per window: does it follow on from the one before it (the last of the previous batch for the first)?"""
        follows = ~gaps
        overlap = self.size - self.stride
        if overlap <= 0:
            follows[0] &= self._last is not None
            return follows
        # Within a batch the same samples are normalised alike, so the overlaps match exactly; against the
        # previous batch's last window only closely (adaptation may have moved the mean in between).
        follows[1:] &= (scaled[:-1, self.stride :] == scaled[1:, :overlap]).all(axis=(1, 2))
        last = self._last
        follows[0] &= last is not None and bool(
            np.allclose(last[self.stride :], scaled[0, :overlap], rtol=1e-4, atol=1e-4)
        )
        return follows

    def score(self, scaled: np.ndarray, gaps: np.ndarray) -> np.ndarray:
        """N x C deviations of a batch of windows (N x T x C, in units of each channel's normal std), NaN until
        a whole span is known; windows flagged in `gaps` are not scored and restart the reference."""
        follows = self._follows(scaled, gaps)
        out = np.full(scaled.shape[0:1] + scaled.shape[2:], np.nan)
        new = min(self.stride, self.size)
        if len(self._history) and follows.all():  # the usual case: one run on from the last batch
            series = np.concatenate([self._history, scaled[:, -new:].reshape(-1, scaled.shape[2])])
            ends = len(self._history) + new * np.arange(1, len(scaled) + 1)
            self._history = self._score_run(series, list(enumerate(ends.tolist())), out)
        else:
            self._history = self._score_runs(scaled, gaps, follows, out)
        self._last = None if gaps[-1] else scaled[-1].copy()
        return out

    def _score_runs(self, scaled: np.ndarray, gaps: np.ndarray, follows: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Split the batch into runs of consecutive windows (at gaps and jumps) and score each."""
        rows: list[np.ndarray] = [self._history]
        ends: list[tuple[int, int]] = []  # (window, where it ends in the rows of this run)
        length = len(self._history)
        for i in range(len(scaled)):
            joined = bool(follows[i]) and length > 0
            if not joined:  # a new run: score the one before, start the reference over
                self._score_run(np.concatenate(rows), ends, out)
                rows, ends, length = [self._history[:0]], [], 0
            if gaps[i]:
                continue
            part = scaled[i, -min(self.stride, self.size) :] if joined else scaled[i]
            rows.append(part)
            length += len(part)
            ends.append((i, length))
        return self._score_run(np.concatenate(rows), ends, out)

    def _score_run(self, series: np.ndarray, ends: list[tuple[int, int]], out: np.ndarray) -> np.ndarray:
        """Score the windows of one run (their ends in `series`) into `out`; returns the samples to keep."""
        ready = [(i, end) for i, end in ends if end >= self.need]
        if ready:
            index = np.array([i for i, _ in ready])
            out[index] = self.test(series, np.array([end for _, end in ready]))
        kept: np.ndarray = series[-self.need :].copy()
        return kept


def recent_tracker(spec: RecentSpec, size: int, stride: int, channels: int) -> SpanTracker:
    """The recent-change test on the device: the largest recent step against the steps before it."""
    return SpanTracker(size, stride, channels, spec.span(size), lambda s, e: deviation_at(s, e, spec, HOLD * size))
