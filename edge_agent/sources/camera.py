"""OpenCV capture: a USB/V4L2 index, a video file, an RTSP/HTTP URL or a GStreamer pipeline.

Live inputs (device, URL, GStreamer) are read by a FrameGrabber (sources/grabber.py) that keeps only the
newest frame, stamped when it was grabbed; a video file is read on demand, frame by frame, since a
replay should not skip frames.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edge_agent.config import CameraSourceConfig
from edge_agent.errors import SourceClosed, SourceError
from edge_agent.metrics import AgentMetrics
from edge_agent.sources.base import Source
from edge_agent.sources.grabber import FrameGrabber
from edge_agent.sources.windowing import WindowSpec
from edge_agent.tasks.base import Item

logger = logging.getLogger(__name__)
Opener = Callable[[CameraSourceConfig], Any]  # returns an opened cv2.VideoCapture-like object


def open_capture(c: CameraSourceConfig) -> Any:
    """cv2.VideoCapture for the configured input, with a one-frame buffer where the backend supports it."""
    import cv2

    if c.gstreamer is not None:
        cap = cv2.VideoCapture(c.gstreamer, cv2.CAP_GSTREAMER)
    elif c.url is not None:
        cap = cv2.VideoCapture(c.url, cv2.CAP_FFMPEG)
    elif c.file is not None:
        cap = cv2.VideoCapture(str(c.file))
    else:
        cap = cv2.VideoCapture(int(c.device or 0))
    if cap.isOpened():
        if c.file is None:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # V4L2 and some others honour it; the grabber drains the rest
        if c.width and c.height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, c.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, c.height)
    return cap


class CameraSource(Source):
    """Keeps only the latest frame: a late frame of a shelf or a line is worth nothing."""

    kind = "camera"
    keep_latest = True
    config: CameraSourceConfig

    def __init__(
        self,
        name: str,
        config: CameraSourceConfig,
        window: WindowSpec | None,
        metrics: AgentMetrics,
        opener: Opener = open_capture,
    ) -> None:
        super().__init__(name, config, window, metrics)
        self._open_capture = opener
        self._cap: Any = None
        self._grabber: FrameGrabber | None = None
        self._count = 0
        self._next_due = 0.0

    @property
    def live(self) -> bool:
        return self.config.file is None

    def describe(self) -> str:
        c = self.config
        if c.url is not None:
            return f"stream {c.url.split('@')[-1]}"  # never log credentials embedded in an RTSP URL
        if c.gstreamer is not None:
            return "gstreamer pipeline"
        return f"file {c.file}" if c.file is not None else f"device {c.device}"

    def open(self) -> None:
        c = self.config
        if c.file is not None and not c.file.is_file():
            raise SourceError(f"video file {c.file} not found")
        cap = self._open_capture(c)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.describe()}")
        self._count = 0
        if self.live:
            self._grabber = FrameGrabber(cap, self.name)
            self._grabber.start()
        else:
            self._cap = cap

    def read(self, timeout_s: float) -> Item | None:
        if self._cap is None and self._grabber is None:
            raise SourceError("camera is not open")
        if self.config.fps:
            wait = self._next_due - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, timeout_s))
                return None
            self._next_due = time.monotonic() + 1.0 / self.config.fps
        if self._grabber is not None:
            return self._newest(self._grabber, timeout_s)
        ok, frame = self._cap.read()
        if not ok or frame is None:
            return self._end_of_stream()
        self._count += 1
        return Item(np.ascontiguousarray(frame), captured_at=time.time(), source=self.name, index=self._count)

    def _newest(self, grabber: FrameGrabber, timeout_s: float) -> Item | None:
        try:
            grabbed = grabber.newest(self._count, timeout_s)
        except SourceError as exc:
            raise SourceError(f"{self.describe()} {exc}") from exc
        if grabbed is None:
            return None
        skipped = grabbed.seq - self._count - 1
        if skipped > 0:  # frames the camera delivered while the model was busy: replaced, as a late frame is
            self.metrics.dropped.labels(self.name, "stale_frame").inc(skipped)
        self._count = grabbed.seq
        return Item(
            grabbed.frame,
            captured_at=grabbed.wall,
            source=self.name,
            index=grabbed.seq,
            received=grabbed.monotonic,  # latency counts from the grab, including the wait for the model
        )

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
        if self._grabber is not None:
            self._grabber.stop()  # it releases the capture
            self._grabber = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None
