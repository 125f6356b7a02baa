"""Debounced anomaly state: a threshold with hysteresis and minimum durations, one event pair per fault."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

FAST_WINDOWS = 2  # consecutive windows over the threshold, one of them over fast_threshold, for a fast start


class AnomalyState(enum.Enum):
    """NORMAL -> PENDING (score over threshold, not long enough yet) -> ANOMALOUS -> NORMAL."""

    NORMAL = "normal"
    PENDING = "pending"
    ANOMALOUS = "anomalous"


@dataclass(frozen=True)
class DecisionSettings:
    """threshold: abnormal above it; clear_ratio: an anomaly clears only below threshold x clear_ratio;
    min_windows: consecutive abnormal windows before anomaly_start; clear_windows: consecutive calm
    windows before anomaly_end; top_channels: channels named in events. min_duration_s / clear_duration_s,
    when set, replace the two counts with times measured on the windows' timestamps (any sample rate).
    fast_threshold: a run whose peak reaches it starts after FAST_WINDOWS windows, whatever the minimum
    duration (a window so far out that waiting a window span only delays the alarm)."""

    threshold: float
    clear_ratio: float = 0.8
    min_windows: int = 3
    clear_windows: int = 3
    top_channels: int = 3
    min_duration_s: float | None = None
    clear_duration_s: float | None = None
    fast_threshold: float | None = None

    def __post_init__(self) -> None:
        if self.threshold <= 0:
            raise ValueError(f"threshold must be > 0, got {self.threshold}")
        if self.fast_threshold is not None and self.fast_threshold <= self.threshold:
            raise ValueError(f"fast_threshold must be above the threshold {self.threshold}, got {self.fast_threshold}")
        if not 0 < self.clear_ratio <= 1:
            raise ValueError(f"clear_ratio must be in (0, 1], got {self.clear_ratio}")
        if self.min_windows < 1 or self.clear_windows < 1:
            raise ValueError("min_windows and clear_windows must be >= 1")
        if any(d is not None and d < 0 for d in (self.min_duration_s, self.clear_duration_s)):
            raise ValueError("min_duration and clear_duration must be >= 0")


@dataclass(frozen=True)
class Transition:
    """An anomaly_start or anomaly_end, with what an operator needs to act on it."""

    kind: Literal["anomaly_start", "anomaly_end"]
    onset: float
    peak_score: float
    duration_s: float
    top_channels: list[tuple[str, float]]
    peak_likelihood: float | None = None

    def details(self) -> dict[str, Any]:
        extra = {} if self.peak_likelihood is None else {"peak_likelihood": round(self.peak_likelihood, 6)}
        return {
            "peak_score": round(self.peak_score, 6),
            **extra,
            "duration_s": round(self.duration_s, 3),
            "onset": self.onset,
            "top_channels": [{"channel": name, "contribution": round(share, 4)} for name, share in self.top_channels],
        }


@dataclass
class _Episode:
    """What is known about the fault being tracked: when it began, its peak, per-channel error sums."""

    onset: float
    peak: float
    channel_sums: np.ndarray
    last_abnormal: float
    peak_raw: float = 0.0

    def add(self, score: float, contributions: np.ndarray, when: float, raw: float) -> None:
        self.peak = max(self.peak, score)
        self.peak_raw = max(self.peak_raw, raw)
        self.channel_sums += contributions
        self.last_abnormal = when


@dataclass
class Decision:
    """The debounced verdict for one window, and the transition it caused, if any."""

    anomalous: bool
    state: AnomalyState
    transition: Transition | None = None


def top_shares(channels: Sequence[str], contributions: np.ndarray, k: int) -> list[tuple[str, float]]:
    """The k channels with the largest share of the total contribution, largest first."""
    total = float(np.sum(contributions))
    if total <= 0 or not np.isfinite(total):
        return []
    order = np.argsort(-contributions, kind="stable")[:k]
    return [(channels[i], float(contributions[i] / total)) for i in order]


class HysteresisDecider:
    """Turns a stream of window scores into a debounced state and start/end transitions.

    One noisy window cannot raise an alarm (min_windows), and a fault whose score hovers around the
    threshold raises one start and one end (the clear level sits below the threshold, clear_windows).
    """

    def __init__(self, settings: DecisionSettings, channels: Sequence[str]) -> None:
        self.settings = settings
        self.channels = tuple(channels)
        self.state = AnomalyState.NORMAL
        self._run = 0
        self._calm = 0
        self._calm_since = 0.0
        self._episode: _Episode | None = None
        self.likelihood: Callable[[float], float] | None = None  # decision value -> likelihood, for events

    def set_threshold(self, value: float) -> None:
        fast = self.settings.fast_threshold
        self.settings = replace(self.settings, threshold=value, fast_threshold=fast if fast and fast > value else None)

    def update(self, score: float, contributions: np.ndarray, when: float, raw: float | None = None) -> Decision:
        """Feed one window (its decision value, per-channel contributions, end time in epoch seconds, raw score)."""
        raw = score if raw is None else raw
        if self.state is AnomalyState.ANOMALOUS:
            transition = self._while_anomalous(score, contributions, when, raw)
        else:
            transition = self._while_normal(score, contributions, when, raw)
        return Decision(self.state is AnomalyState.ANOMALOUS, self.state, transition)

    def _long_enough(self, when: float) -> bool:
        s = self.settings
        assert self._episode is not None
        if s.fast_threshold is not None and self._episode.peak >= s.fast_threshold and self._run >= FAST_WINDOWS:
            return True
        if s.min_duration_s is not None:
            return when - self._episode.onset >= s.min_duration_s
        return self._run >= s.min_windows

    def _while_normal(self, score: float, contributions: np.ndarray, when: float, raw: float) -> Transition | None:
        s = self.settings
        if score <= s.threshold or not math.isfinite(score):
            self.state, self._run, self._episode = AnomalyState.NORMAL, 0, None
            return None
        if self._episode is None:
            self._episode = _Episode(when, score, np.zeros(len(self.channels)), when, raw)
        self._episode.add(score, contributions, when, raw)
        self._run += 1
        if not self._long_enough(when):
            self.state = AnomalyState.PENDING
            return None
        self.state, self._calm = AnomalyState.ANOMALOUS, 0
        return self._transition("anomaly_start", when)

    def _calm_enough(self, when: float) -> bool:
        s = self.settings
        if s.clear_duration_s is not None:
            return when - self._calm_since >= s.clear_duration_s
        return self._calm >= s.clear_windows

    def _while_anomalous(self, score: float, contributions: np.ndarray, when: float, raw: float) -> Transition | None:
        s = self.settings
        assert self._episode is not None
        if score >= s.threshold * s.clear_ratio:
            self._calm = 0
            self._episode.add(score, contributions, when, raw)
            return None
        if self._calm == 0:
            self._calm_since = self._episode.last_abnormal
        self._calm += 1
        if not self._calm_enough(when):
            return None
        transition = self._transition("anomaly_end", self._episode.last_abnormal)
        self.state, self._run, self._episode = AnomalyState.NORMAL, 0, None
        return transition

    def _transition(self, kind: Literal["anomaly_start", "anomaly_end"], until: float) -> Transition:
        episode = self._episode
        assert episode is not None
        top = top_shares(self.channels, episode.channel_sums, self.settings.top_channels)
        likelihood = self.likelihood(episode.peak) if self.likelihood is not None else None
        return Transition(kind, episode.onset, episode.peak_raw, max(0.0, until - episode.onset), top, likelihood)

    def interrupt(self) -> None:
        """A gap in the data: a pending run starts over; an open anomaly stays open."""
        if self.state is not AnomalyState.ANOMALOUS:
            self.state, self._run, self._episode = AnomalyState.NORMAL, 0, None

    @property
    def anomalous(self) -> bool:
        return self.state is AnomalyState.ANOMALOUS

    @property
    def open(self) -> bool:
        """True while a fault is being tracked (pending or anomalous): adaptation must not learn from it."""
        return self.state is not AnomalyState.NORMAL

    def flush(self, when: float | None) -> Transition | None:
        """End an open anomaly (source ended, model reloaded, rebaseline; None: at its last abnormal window)."""
        if self.state is not AnomalyState.ANOMALOUS or self._episode is None:
            self.state, self._run, self._episode = AnomalyState.NORMAL, 0, None
            return None
        last = self._episode.last_abnormal
        transition = self._transition("anomaly_end", last if when is None else max(when, last))
        self.state, self._run, self._episode = AnomalyState.NORMAL, 0, None
        return transition


def debounce(scores: np.ndarray, settings: DecisionSettings) -> np.ndarray:
    """Debounced state per window for a whole score series (benchmarks, threshold calibration)."""
    decider = HysteresisDecider(settings, ["score"])
    ones = np.ones(1)
    out = np.zeros(len(scores), dtype=bool)
    for i, score in enumerate(scores):
        out[i] = decider.update(float(score), ones, float(i)).anomalous
    return out
