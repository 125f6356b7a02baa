"""Reads a live camera as fast as it delivers and keeps only the newest frame, stamped when it was grabbed.

A USB (V4L2) driver or an RTSP client buffers frames: a reader that sleeps between `read()` calls, or one
slower than the camera, gets frames that waited in that buffer, stamped at read time, so the latency
metric hides the lag. The grabber drains the buffer continuously on its own thread (and asks the backend
for a one-frame buffer where it honours CAP_PROP_BUFFERSIZE); the pipeline takes the newest frame on
demand. The time a frame then waits for the model is part of its end-to-end latency.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.errors import SourceError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grabbed:
    """One frame as grabbed: the image, wall-clock and monotonic grab times, and its number since opening."""

    frame: np.ndarray
    wall: float
    monotonic: float
    seq: int


class FrameGrabber(threading.Thread):
    """Owns a capture's reads; `newest()` hands the latest frame to the pipeline's source thread."""

    def __init__(
        self,
        capture: Any,
        name: str,
        wall_clock: Callable[[], float] = time.time,
        mono_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name=f"grab-{name}", daemon=True)
        self._capture = capture
        self._wall = wall_clock
        self._mono = mono_clock
        self._cond = threading.Condition()
        self._latest: Grabbed | None = None
        self._error: str | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Read until stopped or the capture fails; the capture is released here, never under a blocked read."""
        seq = 0
        try:
            while not self._stop_event.is_set():
                ok, frame = self._capture.read()
                wall, mono = self._wall(), self._mono()  # the frame has just arrived: that is its capture time
                if not ok or frame is None:
                    self._fail("stopped delivering frames")
                    return
                seq += 1
                with self._cond:
                    self._latest = Grabbed(np.ascontiguousarray(frame), wall, mono, seq)
                    self._cond.notify_all()
        finally:
            self._capture.release()

    def _fail(self, reason: str) -> None:
        with self._cond:
            self._error = reason
            self._cond.notify_all()

    def newest(self, after_seq: int, timeout_s: float) -> Grabbed | None:
        """The newest frame numbered above after_seq, waiting up to timeout_s; SourceError once reads fail."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                if self._latest is not None and self._latest.seq > after_seq:
                    return self._latest
                if self._error is not None:
                    raise SourceError(self._error)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop reading and wait a little; a read blocked on a stalled stream releases the capture when it returns."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout_s)
