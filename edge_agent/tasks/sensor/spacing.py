"""How a recording's samples are spaced in time: the period, gaps and jitter, found at fit and used at run time."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from edge_agent.tasks.sensor.durations import format_duration

logger = logging.getLogger(__name__)
GAP_FACTOR = 3.0  # a step longer than 3 sample periods is a gap: the data on either side are not one window
JITTER = 0.25  # a step more than 25% away from the period is irregular


@dataclass(frozen=True)
class Spacing:
    """Median sample period, the steps that are gaps, and the share of irregular steps."""

    period_s: float
    gaps: int
    longest_gap_s: float
    irregular_share: float

    def warning(self) -> str | None:
        """One line for the user when the timestamps are not evenly spaced, naming what was found; else None."""
        if self.period_s <= 0:
            return "timestamps do not increase: windows are cut by sample count and time settings cannot be used"
        parts = []
        if self.gaps:
            parts.append(
                f"{self.gaps} gap(s) longer than {GAP_FACTOR:g} samples (longest {format_duration(self.longest_gap_s)})"
                "; windows across a gap are left out of the fit and reset the window on the device"
            )
        if self.irregular_share > 0.05:
            parts.append(f"{100 * self.irregular_share:.0f}% of the steps are more than 25% off the period")
        if not parts:
            return None
        return f"samples are {format_duration(self.period_s)} apart (median), but " + "; ".join(parts)


def measure(timestamps: np.ndarray) -> Spacing:
    """Spacing of epoch-second timestamps in file order."""
    steps = np.diff(np.asarray(timestamps, dtype=np.float64))
    if len(steps) == 0:
        return Spacing(0.0, 0, 0.0, 0.0)
    period = float(np.median(steps))
    if period <= 0:
        return Spacing(0.0, 0, 0.0, 0.0)
    gap = steps > GAP_FACTOR * period
    irregular = np.abs(steps - period) > JITTER * period
    longest = float(steps[gap].max()) if gap.any() else 0.0
    return Spacing(period, int(gap.sum()), longest, float(irregular.mean()))


def gap_free(timestamps: np.ndarray, size: int, period_s: float) -> np.ndarray:
    """Mask of the sliding windows (ending at samples size-1, size, ...) that contain no gap."""
    steps = np.diff(np.asarray(timestamps, dtype=np.float64))
    count = len(timestamps) - size + 1
    if count <= 0:
        return np.zeros(0, dtype=bool)
    if period_s <= 0 or size < 2:
        return np.ones(count, dtype=bool)
    gap = np.concatenate(([0], np.cumsum(steps > GAP_FACTOR * period_s)))
    # window k spans samples k..k+size-1: it holds a gap if the gap count changes between them
    mask: np.ndarray = gap[size - 1 :] == gap[:count]
    return mask


class GapCheck:
    """Finds windows that span a gap at run time, from their start and end times and the sample period.

    The period is the fit's when the manifest records it, else the first windows' median spacing. A
    stream whose own spacing differs from the fit's by more than half is logged once: the window then
    covers a different stretch of time than the model was fitted on.
    """

    def __init__(self, size: int, period_s: float | None, max_gap: float, name: str) -> None:
        self.size = size
        self.period_s = period_s
        self.max_gap = max_gap
        self.name = name
        self.measured_s: float | None = None
        self._warned = False

    def spans_gap(self, starts: np.ndarray, ends: np.ndarray, max_steps: np.ndarray | None = None) -> np.ndarray:
        """Mask of the windows holding a step longer than max_gap sample periods.

        With each window's longest step (sources report it) that is exact; without it the span is used,
        which also counts several short drop-outs in one window as a gap.
        """
        spans = ends - starts
        if self.size < 2:
            return np.zeros(len(spans), dtype=bool)
        self._measure(spans)
        period = self.period_s if self.period_s is not None else self.measured_s
        if period is None or period <= 0:
            return np.zeros(len(spans), dtype=bool)
        if max_steps is not None:
            step_mask: np.ndarray = max_steps > self.max_gap * period * (1 + 1e-6)
            return step_mask
        mask: np.ndarray = spans > (self.size - 2 + self.max_gap) * period * (1 + 1e-6)
        return mask

    def _measure(self, spans: np.ndarray) -> None:
        if self.measured_s is None:
            self.measured_s = float(np.median(spans)) / (self.size - 1)
            if self.period_s is not None and not self._warned and self.measured_s > 0:
                ratio = self.measured_s / self.period_s
                if not 2 / 3 <= ratio <= 1.5:
                    logger.warning(
                        "%s: samples arrive every %s, the model was fitted on samples %s apart: its window of %d "
                        "samples covers %s instead of %s; refit on this stream", self.name,
                        format_duration(self.measured_s), format_duration(self.period_s), self.size,
                        format_duration(self.measured_s * (self.size - 1)),
                        format_duration(self.period_s * (self.size - 1)),
                    )  # fmt: skip
                    self._warned = True
