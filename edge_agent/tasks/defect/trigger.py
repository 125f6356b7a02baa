"""Per-item triggering: which frames of a continuous camera stream are judged when a trigger fires.

The pipeline calls `gate.fire(trigger_id)` when `cmd/trigger` arrives over MQTT; a GPIO edge
(light barrier, PLC output) calls it through `gate.hook()`. The task asks `gate.take(captured_at)`
for every frame: the first frame captured after a pending trigger (plus an optional settling delay)
is judged under the trigger's id, every other frame is skipped before the model runs.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trigger:
    trigger_id: str
    fired_at: float


class TriggerGate:
    """Thread-safe queue of pending triggers; stale ones expire and are counted as missed."""

    def __init__(
        self, timeout_s: float = 5.0, delay_s: float = 0.0, max_pending: int = 64,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.timeout_s = timeout_s
        self.delay_s = delay_s
        self.clock = clock
        self._pending: deque[Trigger] = deque()
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.fired = 0
        self.missed = 0

    def fire(self, trigger_id: str | None = None) -> str:
        """Register a trigger now; returns its id (generated when the caller has none)."""
        with self._lock:
            tid = trigger_id or f"trigger-{next(self._ids)}"
            self._pending.append(Trigger(tid, self.clock()))
            self.fired += 1
            while len(self._pending) > self._max_pending:
                dropped = self._pending.popleft()
                self.missed += 1
                logger.warning("trigger %s dropped: over %d triggers pending", dropped.trigger_id, self._max_pending)
        return tid

    def hook(self) -> Callable[..., None]:
        """A callback for GPIO libraries (gpiozero `when_pressed`, libgpiod edge events): ignores its arguments."""

        def on_edge(*_args: object, **_kwargs: object) -> None:
            self.fire(None)

        return on_edge

    def take(self, captured_at: float) -> str | None:
        """The id of the oldest trigger this frame satisfies (and consume it), or None to skip the frame."""
        with self._lock:
            self._expire()
            if self._pending and captured_at >= self._pending[0].fired_at + self.delay_s:
                return self._pending.popleft().trigger_id
        return None

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def _expire(self) -> None:
        now = self.clock()
        while self._pending and now - self._pending[0].fired_at > self.timeout_s + self.delay_s:
            stale = self._pending.popleft()
            self.missed += 1
            logger.warning("trigger %s expired: no frame within %.1fs", stale.trigger_id, self.timeout_s)
