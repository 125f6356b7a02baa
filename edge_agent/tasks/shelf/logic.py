"""Shelf logic: count box centres per zone and row, smooth the counts over frames, debounce stock events."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from edge_agent.errors import DataError
from edge_agent.messages import ZoneCount
from edge_agent.tasks.base import EventDraft
from edge_agent.tasks.shelf.config import ShelfTaskConfig, ZoneConfig

logger = logging.getLogger(__name__)

StockState = Literal["ok", "low", "out"]


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule for every point against one polygon, vectorised over points and edges."""
    return _inside(points, _edges(polygon))


def _edges(polygon: np.ndarray) -> np.ndarray:
    """Edges as rows of x1, y1, x2, y2 (4 x V), computed once per zone."""
    poly = np.asarray(polygon, dtype=np.float32)
    following = np.concatenate([poly[1:], poly[:1]])
    return np.stack([poly[:, 0], poly[:, 1], following[:, 0], following[:, 1]])


def _inside(points: np.ndarray, edges: np.ndarray) -> np.ndarray:
    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    x, y = points[:, 0:1], points[:, 1:2]
    x1, y1, x2, y2 = edges[0], edges[1], edges[2], edges[3]
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    crossings = straddles & (x < cross_x)
    return np.asarray(np.count_nonzero(crossings, axis=1) % 2 == 1)


@dataclass
class Zone:
    """A configured zone in the pixels of the frames actually arriving."""

    config: ZoneConfig
    polygon: np.ndarray
    edges: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.edges = _edges(self.polygon)

    def count(self, centres: np.ndarray) -> tuple[int, list[int]]:
        """Facings whose box centre lies in the zone, in total and per horizontal row band (top first)."""
        return self.split_rows(centres[_inside(centres, self.edges)])

    def split_rows(self, inside: np.ndarray) -> tuple[int, list[int]]:
        """Count centres already known to lie in the zone, in total and per row band."""
        if self.config.rows == 1:
            return len(inside), [len(inside)]
        top, bottom = float(self.polygon[:, 1].min()), float(self.polygon[:, 1].max())
        band = np.clip(
            ((inside[:, 1] - top) / max(bottom - top, 1e-6) * self.config.rows).astype(int), 0, self.config.rows - 1
        )
        return len(inside), np.bincount(band, minlength=self.config.rows).tolist()


def zones_for_frame(config: ShelfTaskConfig, width: int, height: int) -> list[Zone]:
    """The zones scaled to a frame of this size; DataError when the frame cannot be the one they were drawn on."""
    sx = sy = 1.0
    if config.frame_size is not None and (width, height) != tuple(config.frame_size):
        want_w, want_h = config.frame_size
        if abs(width / height - want_w / want_h) > 0.01 * (want_w / want_h):
            raise DataError(
                f"camera delivers {width}x{height} frames but the shelf zones were drawn on {want_w}x{want_h} "
                "(another aspect ratio): set the camera resolution or redraw the zones with `edge-agent zones`"
            )
        sx, sy = width / want_w, height / want_h
        logger.warning("frames are %dx%d, zones were drawn on %dx%d: scaling the zones", width, height, want_w, want_h)
    zones = []
    for zone in config.zones:
        polygon = np.asarray(zone.polygon, dtype=np.float32) * np.array([sx, sy], dtype=np.float32)
        if polygon[:, 0].min() >= width or polygon[:, 1].min() >= height or polygon.max() <= 0:
            logger.warning("zone %s lies outside the %dx%d frame: it will always count 0", zone.name, width, height)
        zones.append(Zone(zone, polygon))
    return zones


class CountSmoother:
    """Turns raw per-frame counts into a stable count, so a passing arm does not flip it."""

    def __init__(self, method: Literal["median", "hysteresis"], frames: int) -> None:
        self.method = method
        self.window: deque[int] = deque(maxlen=frames)
        self.value: int | None = None

    def update(self, raw: int) -> int:
        self.window.append(raw)
        if self.method == "median" or self.value is None:
            # Lower median: with an even window a tie resolves towards fewer facings, never invents one.
            self.value = sorted(self.window)[(len(self.window) - 1) // 2]
            return self.value
        full = len(self.window) == self.window.maxlen
        if full and (all(c > self.value for c in self.window) or all(c < self.value for c in self.window)):
            self.value = sorted(self.window)[(len(self.window) - 1) // 2]
        return self.value


def stock_state(count: int, zone: ZoneConfig) -> StockState:
    if count == 0:
        return "out"
    return "low" if count <= zone.low_stock else "ok"


@dataclass
class StockTracker:
    """Per-zone stock state; an event fires once a new state has held for `debounce` frames."""

    zone: ZoneConfig
    debounce: int
    cooldown_s: float
    state: StockState | None = None
    count: int = 0
    _pending: StockState | None = None
    _pending_frames: int = 0
    _last_event_at: float = field(default=float("-inf"))

    def update(self, count: int, now: float) -> EventDraft | None:
        new = stock_state(count, self.zone)
        if new == self.state:
            self._pending, self._pending_frames = None, 0
            self.count = count
            return None
        self._pending_frames = self._pending_frames + 1 if new == self._pending else 1
        self._pending = new
        if self._pending_frames < self.debounce or now - self._last_event_at < self.cooldown_s:
            return None
        previous_state, previous = self.state, self.count
        self.state, self.count, self._pending, self._pending_frames = new, count, None, 0
        event = _event_for(previous_state, new)
        if event is None:
            return None
        self._last_event_at = now
        severity = {"out_of_stock": "critical", "low_stock": "warning", "restocked": "info"}[event]
        details = {
            "count": count,
            "previous": previous if previous_state else None,
            "low_stock_at": self.zone.low_stock,
        }
        return EventDraft(event, subject=self.zone.name, severity=severity, details=details)


def _event_for(
    previous: StockState | None, new: StockState
) -> Literal["low_stock", "out_of_stock", "restocked"] | None:
    if new == "out":
        return "out_of_stock"
    if new == "low":
        return "low_stock"  # from ok, or a partial refill of an empty slot that is still low
    return "restocked" if previous in ("low", "out") else None  # the first look at a full shelf is not news


class ShelfCounter:
    """Zones + smoothing + stock trackers for one camera view."""

    def __init__(self, config: ShelfTaskConfig) -> None:
        self.config = config
        self._zones: list[Zone] = []
        self._size: tuple[int, int] | None = None
        self._edges = np.zeros((4, 0), np.float32)
        self._starts = np.zeros(0, np.int64)
        self.smoothers = {z.name: CountSmoother(config.smoothing, config.smoothing_frames) for z in config.zones}
        self.trackers = {z.name: StockTracker(z, config.debounce_frames, config.event_cooldown_s) for z in config.zones}

    def zones(self, width: int, height: int) -> list[Zone]:
        if self._size != (width, height):
            self._zones = zones_for_frame(self.config, width, height)
            self._size = (width, height)
            # Every zone's edges side by side: one vectorised point-in-polygon pass for all zones per frame.
            self._edges = np.concatenate([z.edges for z in self._zones], axis=1)
            self._starts = np.cumsum([0] + [z.edges.shape[1] for z in self._zones[:-1]])
        return self._zones

    def membership(self, centres: np.ndarray) -> np.ndarray:
        """Points x zones: whether each centre lies in each zone (even-odd rule)."""
        if len(centres) == 0:
            return np.zeros((0, len(self._zones)), dtype=bool)
        x, y = centres[:, 0:1], centres[:, 1:2]
        x1, y1, x2, y2 = self._edges
        straddles = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            crossings = straddles & (x < x1 + (y - y1) * (x2 - x1) / (y2 - y1))
        return np.asarray(np.add.reduceat(crossings.astype(np.int32), self._starts, axis=1) % 2 == 1)

    def update(
        self, centres: np.ndarray, width: int, height: int, now: float
    ) -> tuple[list[ZoneCount], list[EventDraft]]:
        counts, events = [], []
        zones = self.zones(width, height)
        inside = self.membership(centres)
        for k, zone in enumerate(zones):
            raw, per_row = zone.split_rows(centres[inside[:, k]])
            smoothed = self.smoothers[zone.config.name].update(raw)
            tracker = self.trackers[zone.config.name]
            event = tracker.update(smoothed, now)
            if event is not None:
                events.append(event)
            counts.append(
                # Built from validated config and ints: skip re-validation on every frame of every zone.
                ZoneCount.model_construct(
                    zone=zone.config.name,
                    count=smoothed,
                    raw_count=raw,
                    capacity=zone.config.capacity,
                    state=tracker.state or stock_state(smoothed, zone.config),
                    facings_per_row=per_row,
                )
            )
        return counts, events
