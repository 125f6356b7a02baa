"""Snapshot files: the JPEGs devices send with events, kept in a folder beside the database, keyed by sha256.

Only complete JPEGs up to `max_bytes` are kept (ingest refuses the rest before they get here; checked
again so no other caller can store something else). Retention runs after each save: files older than
`max_age` go first, then the oldest until the folder holds at most `max_total_bytes`. The database keeps
each snapshot's topic, size and hash whether or not its file is still on disk.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)
JPEG_START, JPEG_END = b"\xff\xd8\xff", b"\xff\xd9"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Retention:
    max_bytes: int = 1024 * 1024  # one snapshot
    max_total_bytes: int = 512 * 1024 * 1024
    max_age_s: float = 30 * 86400


class SnapshotStore:
    def __init__(self, root: Path, retention: Retention | None = None, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.retention = retention or Retention()
        self._clock = clock
        self._lock = threading.Lock()

    def path_for(self, sha256: str) -> Path | None:
        """Where a snapshot's file is (None for anything but a lower-case sha256, so no path can escape)."""
        if not _SHA256.match(sha256):
            return None
        return self.root / sha256[:2] / f"{sha256}.jpg"

    def has(self, sha256: str) -> bool:
        path = self.path_for(sha256)
        return path is not None and path.is_file()

    def save(self, sha256: str, payload: bytes) -> bool:
        """Keep one JPEG; False (and nothing written) when it is not a complete JPEG or too large."""
        path = self.path_for(sha256)
        if path is None or len(payload) > self.retention.max_bytes:
            return False
        if not payload.startswith(JPEG_START) or JPEG_END not in payload[-64:]:
            return False
        with self._lock:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
                with os.fdopen(fd, "wb") as handle:
                    handle.write(payload)
                os.replace(tmp, path)  # readers never see half a file
            self._enforce()
        return True

    def _enforce(self) -> None:
        files = sorted((p.stat().st_mtime, p.stat().st_size, p) for p in self.root.glob("??/*.jpg"))
        cutoff = self._clock() - self.retention.max_age_s
        total = sum(size for _, size, _ in files)
        for mtime, size, path in files:
            if mtime >= cutoff and total <= self.retention.max_total_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            logger.debug("snapshot %s removed by retention", path.name)

    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.glob("??/*.jpg"))


def folder_beside(database_url: str, fallback: Path = Path("snapshots")) -> Path:
    """`sqlite:///var/roi.db` keeps its snapshots in `var/roi.snapshots/`; other databases in `fallback`."""
    prefix = "sqlite:///"
    if database_url.startswith(prefix) and database_url[len(prefix) :] not in ("", ":memory:"):
        db = Path(database_url[len(prefix) :])
        return db.with_name(db.stem + ".snapshots")
    return fallback
