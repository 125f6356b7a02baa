"""Exponential backoff with full jitter, so a fleet that lost its broker does not reconnect in lockstep."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """delay() grows initial * 2^n up to max_s, drawn uniformly from [delay/2, delay]; reset() after success."""

    def __init__(self, initial_s: float, max_s: float, rand: Callable[[], float] = random.random) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self._rand = rand
        self.attempts = 0

    def delay(self) -> float:
        ceiling = min(self.max_s, self.initial_s * (2**self.attempts))
        self.attempts += 1
        return float(ceiling / 2 + (ceiling / 2) * self._rand())

    def reset(self) -> None:
        self.attempts = 0
