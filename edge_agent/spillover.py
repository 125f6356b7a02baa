"""Where results wait while the outbox cannot write (disk full, read-only volume, I/O error).

A named back-pressure policy: DROP_OLDEST within `max_bytes`. Only what overflows is dropped, and
the caller counts it in the same `dropped` figure the cloud receives. `RateLimitedLog` keeps the
log to one line per interval however often the disk refuses a write.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

Row = tuple[str, bytes, float, int, "int | None"]  # topic, payload, created, size, seq


class SpillBuffer:
    """Rows in commit order, bounded by payload bytes; `add` returns how many old rows it had to drop."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.rows: deque[Row] = deque()
        self.bytes = 0

    def add(self, rows: list[Row]) -> int:
        dropped = 0
        for row in rows:
            self.rows.append(row)
            self.bytes += row[3]
        while self.rows and self.bytes > self.max_bytes:
            self.bytes -= self.rows.popleft()[3]
            dropped += 1
        return dropped

    def take_all(self) -> list[Row]:
        rows = list(self.rows)
        self.rows.clear()
        self.bytes = 0
        return rows

    def seqs(self) -> set[int]:
        return {row[4] for row in self.rows if row[4] is not None}

    def __len__(self) -> int:
        return len(self.rows)


class RateLimitedLog:
    """At most one line per `interval_s` for one recurring condition; the suppressed count goes in the next."""

    def __init__(
        self, logger: logging.Logger, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.clock = clock
        self._last = -float("inf")
        self._suppressed = 0

    def warning(self, message: str, *args: object) -> bool:
        now = self.clock()
        if now - self._last < self.interval_s:
            self._suppressed += 1
            return False
        if self._suppressed:
            self.logger.warning("%s (%d similar since the last line)", message % args, self._suppressed)
        else:
            self.logger.warning(message, *args)
        self._last, self._suppressed = now, 0
        return True

    def reset(self) -> None:
        self._last, self._suppressed = -float("inf"), 0
