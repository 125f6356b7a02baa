"""Following slow drift of a machine's normal state without learning its faults.

On windows judged normal (no anomaly pending or open, and the window itself under the threshold),
the scaler means and the calibration's error levels move towards the recent values at a rate set in
time: after `time_constant_s` of normal data an old level has 1/e of its weight left. While an
anomaly is pending or open nothing is learned, so a fault cannot become the new normal by lasting.
`rebaseline` (after maintenance) relearns both levels from the next stretch of data, fast and with
alarms held.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np

from edge_agent.tasks.sensor.calibration import Calibration
from edge_agent.tasks.sensor.scoring import SensorParams

logger = logging.getLogger(__name__)


@dataclass
class BatchStats:
    """What one scored batch offers for learning: raw window means, log errors, end times, normal flags."""

    means: np.ndarray
    channel_logs: np.ndarray
    joint_logs: np.ndarray
    ends: np.ndarray
    normal: np.ndarray


class Adapter:
    """Exponentially weighted update of params.mean and the calibration's locations, frozen during anomalies."""

    def __init__(self, params: SensorParams, calibration: Calibration | None, time_constant_s: float | None) -> None:
        self.params = params
        self.calibration = calibration
        self.time_constant_s = time_constant_s
        self.step_s: float | None = None
        self.learn_s: float | None = None  # a rebaseline asked for, not started yet
        self.learning_until: float | None = None
        self._batch: BatchStats | None = None
        self.updates = 0

    @property
    def active(self) -> bool:
        return self.time_constant_s is not None or self.learn_s is not None or self.learning_until is not None

    def learning(self, when: float) -> bool:
        """True while a rebaseline is relearning the levels (the task holds its alarms then)."""
        if self.learn_s is not None:
            self.learning_until, self.learn_s = when + self.learn_s, None
        if self.learning_until is not None and when >= self.learning_until:
            logger.info("rebaseline finished: scaler means %s", np.round(self.params.mean, 4).tolist())
            self.learning_until = None
        return self.learning_until is not None

    def rebaseline(self, duration_s: float) -> None:
        """Relearn the normal levels from the next `duration_s` of data."""
        self.learn_s = duration_s

    def observe(self, stats: BatchStats | None) -> None:
        """Keep a scored batch's figures until the task has judged its windows (mark them in stats.normal)."""
        self._batch = stats

    def mark_normal(self, slot: int) -> None:
        """The task judged window `slot` of the last scored batch normal: it may be learned from."""
        if self._batch is not None and slot < len(self._batch.normal):
            self._batch.normal[slot] = True

    def _step(self, ends: np.ndarray) -> float:
        if len(ends) > 1:
            steps = np.diff(ends)
            self.step_s = float(np.median(steps)) if self.step_s is None else self.step_s
            self.step_s += 0.1 * (float(np.median(steps)) - self.step_s)
        return self.step_s or 0.0

    def _rate(self, normal_count: int, ends: np.ndarray) -> float:
        tau = self.time_constant_s
        if self.learning_until is not None:
            tau = max((self.learning_until - float(ends[0])) / 3.0, 1e-9)
        if tau is None:
            return 0.0
        return 1.0 - math.exp(-normal_count * self._step(ends) / tau)

    def apply(self) -> SensorParams:
        """Fold the last judged batch into the levels; returns the params to normalise the next batch with."""
        batch, self._batch = self._batch, None
        if batch is None or not batch.normal.any():
            if batch is not None:
                self._step(batch.ends)
            return self.params
        alpha = self._rate(int(batch.normal.sum()), batch.ends)
        if alpha <= 0:
            return self.params
        mask = batch.normal
        mean = self.params.mean + alpha * (batch.means[mask].mean(axis=0) - self.params.mean)
        self.params = replace(self.params, mean=mean.astype(np.float32))
        if self.calibration is not None:
            c = self.calibration
            c.channel_loc = c.channel_loc + alpha * (batch.channel_logs[mask].mean(axis=0) - c.channel_loc)
            c.joint_loc += alpha * (float(batch.joint_logs[mask].mean()) - c.joint_loc)
        self.updates += 1
        return self.params
