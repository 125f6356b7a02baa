"""Runs one source in its own thread: reconnects with backoff, and hands items over with a named policy.

Two hand-over policies, named where they are chosen:
- LatestSlot (cameras): keeps only the newest frame; a replaced frame is counted as `stale_frame`.
- BoundedQueue (sensor windows, triggered items): blocks the source when full (back-pressure), so
  a replay never loses data; a live source whose reader cannot wait counts `queue_full` and logs it.
"""

from __future__ import annotations

import collections
import enum
import logging
import threading
import time

from edge_agent.backoff import Backoff
from edge_agent.errors import SourceClosed, SourceError
from edge_agent.metrics import AgentMetrics
from edge_agent.sources.base import Source
from edge_agent.tasks.base import Item

logger = logging.getLogger(__name__)


class SourceState(enum.Enum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    BACKOFF = "backoff"
    CLOSED = "closed"


class Handover:
    """What a source thread puts items into and a pipeline takes batches from."""

    def __init__(self, capacity: int, keep_latest: bool) -> None:
        self.capacity = 1 if keep_latest else capacity
        self.keep_latest = keep_latest
        self._items: collections.deque[Item] = collections.deque()
        self._cond = threading.Condition()
        self.closed = False

    def put(self, item: Item, stop: threading.Event) -> bool:
        """Add an item; returns False if the latest-frame policy replaced an unprocessed one."""
        with self._cond:
            if self.keep_latest:
                replaced = bool(self._items)
                self._items.clear()
                self._items.append(item)
                self._cond.notify()
                return not replaced
            while len(self._items) >= self.capacity and not stop.is_set():
                self._cond.wait(0.1)
            self._items.append(item)
            self._cond.notify()
            return True

    def take(self, max_items: int, timeout_s: float) -> list[Item]:
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout_s)
            batch = [self._items.popleft() for _ in range(min(max_items, len(self._items)))]
            self._cond.notify_all()
            return batch

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)


class SourceRunner(threading.Thread):
    """Owns a source's life: connect, stream, lose it, back off with jitter, reconnect; never raises."""

    def __init__(self, source: Source, handover: Handover, metrics: AgentMetrics, backoff: Backoff) -> None:
        super().__init__(name=f"source-{source.name}", daemon=True)
        self.source = source
        self.handover = handover
        self.metrics = metrics
        self.backoff = backoff
        self.state = SourceState.CONNECTING
        self.last_error = ""
        self._stop_event = threading.Event()
        self.finished = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        name = self.source.name
        try:
            while not self._stop_event.is_set():
                try:
                    self._connect_and_stream()
                except SourceClosed as exc:
                    logger.info("source %s ended: %s", name, exc)
                    break
                except SourceError as exc:
                    self._lost(str(exc))
        finally:
            self.state = SourceState.CLOSED
            self.metrics.source_up.labels(name).set(0)
            self._close_quietly()
            self.handover.close()
            self.finished.set()

    def _connect_and_stream(self) -> None:
        self.state = SourceState.CONNECTING
        self.source.open()
        self.state = SourceState.STREAMING
        self.metrics.source_up.labels(self.source.name).set(1)
        logger.info("source %s streaming (%s)", self.source.name, self.source.describe())
        while not self._stop_event.is_set():
            item = self.source.read(timeout_s=0.5)
            if item is None:
                continue
            self.backoff.reset()
            if not self.handover.put(item, self._stop_event):
                self.metrics.dropped.labels(self.source.name, "stale_frame").inc()
            self.metrics.queue_depth.labels(self.source.name).set(len(self.handover))

    def _lost(self, reason: str) -> None:
        name = self.source.name
        self.metrics.source_up.labels(name).set(0)
        self._close_quietly()
        delay = self.backoff.delay()
        if reason != self.last_error:
            logger.warning("source %s lost: %s; retrying in %.1fs", name, reason, delay)
        else:
            logger.debug("source %s still unavailable; retrying in %.1fs", name, delay)
        self.last_error = reason
        self.state = SourceState.BACKOFF
        self.metrics.source_reconnects.labels(name).inc()
        self._stop_event.wait(delay)

    def _close_quietly(self) -> None:
        try:
            self.source.close()
        except SourceError as exc:
            logger.debug("closing source %s: %s", self.source.name, exc)

    def wait_idle(self, timeout_s: float) -> bool:
        """For tests and replays: wait until the source has ended and the handover is drained."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.finished.is_set() and len(self.handover) == 0:
                return True
            time.sleep(0.02)
        return False
