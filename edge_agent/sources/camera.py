"""OpenCV capture: a USB/V4L2 index, a video file, an RTSP/HTTP URL or a GStreamer pipeline."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from edge_agent.config import CameraSourceConfig
from edge_agent.errors import SourceClosed, SourceError
from edge_agent.sources.base import Source
from edge_agent.tasks.base import Item

logger = logging.getLogger(__name__)


class CameraSource(Source):
    """Keeps only the latest frame: a late frame of a shelf or a line is worth nothing."""

    kind = "camera"
    keep_latest = True
    config: CameraSourceConfig

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._cap: Any = None
        self._count = 0
        self._next_due = 0.0

    def describe(self) -> str:
        c = self.config
        if c.url is not None:
            return f"stream {c.url.split('@')[-1]}"  # never log credentials embedded in an RTSP URL
        if c.gstreamer is not None:
            return "gstreamer pipeline"
        return f"file {c.file}" if c.file is not None else f"device {c.device}"

    def open(self) -> None:
        import cv2

        c = self.config
        if c.file is not None and not c.file.is_file():
            raise SourceError(f"video file {c.file} not found")
        if c.gstreamer is not None:
            cap = cv2.VideoCapture(c.gstreamer, cv2.CAP_GSTREAMER)
        elif c.url is not None:
            cap = cv2.VideoCapture(c.url, cv2.CAP_FFMPEG)
        elif c.file is not None:
            cap = cv2.VideoCapture(str(c.file))
        else:
            cap = cv2.VideoCapture(int(c.device or 0))
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.describe()}")
        if c.width and c.height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, c.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, c.height)
        self._cap = cap

    def read(self, timeout_s: float) -> Item | None:
        if self._cap is None:
            raise SourceError("camera is not open")
        if self.config.fps:
            wait = self._next_due - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, timeout_s))
                return None
            self._next_due = time.monotonic() + 1.0 / self.config.fps
        ok, frame = self._cap.read()
        if not ok or frame is None:
            return self._end_of_stream()
        self._count += 1
        return Item(np.ascontiguousarray(frame), captured_at=time.time(), source=self.name, index=self._count)

    def _end_of_stream(self) -> Item | None:
        c = self.config
        if c.file is not None:
            if c.loop and c.file.is_file():
                self.close()
                self.open()
                return None
            if not c.file.is_file():
                raise SourceError(f"video file {c.file} disappeared")
            raise SourceClosed(f"end of {c.file}")
        raise SourceError(f"{self.describe()} stopped delivering frames")

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
