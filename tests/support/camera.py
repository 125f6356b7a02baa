"""A simulated live camera for tests: frames appear on a clock whether or not anyone reads them.

It stands in for cv2.VideoCapture at the edge of hardware. Like an RTSP client (or a V4L2 driver with
a deep ring), it buffers without bound what it has produced and `read()` returns the oldest unread frame, so a reader
slower than the camera falls further and further behind. Each frame's pixels carry its number, so a
test knows when it was really produced.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np


class SimulatedCamera:
    def __init__(self, fps: float, shape: tuple[int, int] = (48, 64)) -> None:
        self.fps = fps
        self.shape = shape
        self.t0 = time.monotonic()
        self._next = 0  # number of the next frame read() returns
        self._lock = threading.Lock()
        self.released = False
        self.props: dict[int, float] = {}

    def produced_at(self, number: int) -> float:
        """The monotonic time frame `number` came off the sensor."""
        return self.t0 + number / self.fps

    @staticmethod
    def number(frame: np.ndarray) -> int:
        return int(frame[0, 0, 0]) | int(frame[0, 0, 1]) << 8 | int(frame[0, 0, 2]) << 16

    def isOpened(self) -> bool:  # cv2.VideoCapture's name
        return not self.released

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return False  # like most RTSP backends: the buffer size is not honoured

    def read(self) -> tuple[bool, Any]:
        with self._lock:
            if self.released:
                return False, None
            wait = self.produced_at(self._next) - time.monotonic()  # > 0: the next frame is not there yet
        if wait > 0:
            time.sleep(wait)
        with self._lock:
            n = self._next
            self._next += 1
        frame = np.zeros((*self.shape, 3), dtype=np.uint8)
        frame[0, 0] = (n & 0xFF, (n >> 8) & 0xFF, (n >> 16) & 0xFF)
        return True, frame

    def release(self) -> None:
        self.released = True
