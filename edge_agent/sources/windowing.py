"""Sliding windows over multichannel sensor samples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_agent.tasks.base import Item


@dataclass(frozen=True)
class WindowSpec:
    """Window length and stride in samples, and channel names in model order."""

    size: int
    stride: int
    channels: tuple[str, ...]


class Windower:
    """Collects samples in a ring and emits a (size x channels) float32 window every `stride` samples."""

    def __init__(self, spec: WindowSpec, source: str) -> None:
        self.spec = spec
        self.source = source
        self._buf = np.zeros((spec.size, len(spec.channels)), dtype=np.float32)
        self._times = np.zeros(spec.size, dtype=np.float64)
        self._filled = 0
        self._since_emit = 0
        self._count = 0

    def reset(self) -> None:
        """Forget partial windows, e.g. after a gap in the data or a reconnect."""
        self._filled = 0
        self._since_emit = 0

    def push(self, timestamp: float, values: np.ndarray, meta: dict[str, object] | None = None) -> Item | None:
        size = self.spec.size
        self._buf[:-1] = self._buf[1:]
        self._buf[-1] = values
        self._times[:-1] = self._times[1:]
        self._times[-1] = timestamp
        self._filled = min(self._filled + 1, size)
        self._since_emit += 1
        if self._filled < size or self._since_emit < self.spec.stride:
            return None
        self._since_emit = 0
        self._count += 1
        info: dict[str, object] = {
            "window_start": float(self._times[0]),
            "window_end": float(self._times[-1]),
            "max_step": float(np.max(np.diff(self._times))) if size > 1 else 0.0,  # the sensor task skips gaps
            "channels": self.spec.channels,
        }
        if meta:
            info.update(meta)
        return Item(
            self._buf.copy(), captured_at=float(self._times[-1]), source=self.source, index=self._count, meta=info
        )
