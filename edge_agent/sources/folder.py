"""Images from a folder in name order: line-scan captures, test benches, demos."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.config import FolderSourceConfig
from edge_agent.errors import SourceClosed, SourceError
from edge_agent.sources.base import Source
from edge_agent.tasks.base import Item

logger = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


class FolderSource(Source):
    """Every image is an item (nothing is dropped): the pipeline takes them through a bounded queue."""

    kind = "folder"
    keep_latest = False
    config: FolderSourceConfig

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._files: list[Path] = []
        self._pos = 0
        self._count = 0

    def describe(self) -> str:
        return f"folder {self.config.path}"

    def open(self) -> None:
        folder = self.config.path
        if not folder.is_dir():
            raise SourceError(f"image folder {folder} not found")
        self._files = sorted(p for p in folder.glob(self.config.pattern) if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise SourceError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
        self._pos = 0 if self._pos >= len(self._files) else self._pos

    def read(self, timeout_s: float) -> Item | None:
        import cv2

        if self._pos >= len(self._files):
            if not self.config.loop:
                raise SourceClosed(f"all {len(self._files)} images of {self.config.path} read")
            self._pos = 0
        path = self._files[self._pos]
        self._pos += 1
        if self.config.interval_s:
            time.sleep(self.config.interval_s)
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            if not path.exists():
                raise SourceError(f"{path} disappeared")
            self.metrics.input_errors.labels(self.name, "unreadable_image").inc()
            logger.warning("skipping %s: not a readable image", path)
            return None
        self._count += 1
        meta: dict[str, Any] = {"filename": path.name}
        return Item(
            np.ascontiguousarray(frame), captured_at=time.time(), source=self.name, index=self._count, meta=meta
        )

    def close(self) -> None:
        self._files = []
