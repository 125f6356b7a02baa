"""Shelf logic: count box centres per zone and row, smooth the counts over frames, debounce stock events."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
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
    min_width: float = 0.0
    max_width: float = float("inf")
    edges: np.ndarray = field(init=False, repr=False)
    area: float = field(init=False)

    def __post_init__(self) -> None:
        self.edges = _edges(self.polygon)
        x, y = self.polygon[:, 0].astype(np.float64), self.polygon[:, 1].astype(np.float64)
        self.area = abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2

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


def zone_scale(config: ShelfTaskConfig, width: int, height: int) -> tuple[float, float]:
    """Factors from the zones' coordinates to the pixels of a width x height frame."""
    if config.coordinates == "normalized":
        return float(width), float(height)
    if config.frame_size is None or (width, height) == tuple(config.frame_size):
        return 1.0, 1.0
    want_w, want_h = config.frame_size
    if abs(width / height - want_w / want_h) > 0.01 * (want_w / want_h):
        logger.warning(
            "frames are %dx%d but the zones were drawn on %dx%d (another aspect ratio): zones are stretched to the "
            "frame, assuming the camera shows the same view; redraw them with `edge-agent zones` if it is cropped",
            width,
            height,
            want_w,
            want_h,
        )
    else:
        logger.warning("frames are %dx%d, zones were drawn on %dx%d: scaling the zones", width, height, want_w, want_h)
    return width / want_w, height / want_h


def zones_for_frame(config: ShelfTaskConfig, width: int, height: int) -> list[Zone]:
    """The zones in the pixels of a frame of this size; DataError naming the zone when one lies outside it."""
    sx, sy = zone_scale(config, width, height)
    zones = []
    for index, zone in enumerate(config.zones):
        polygon = np.asarray(zone.polygon, dtype=np.float32) * np.array([sx, sy], dtype=np.float32)
        if polygon[:, 0].min() >= width or polygon[:, 1].min() >= height or polygon.max() <= 0:
            raise DataError(
                f"zones.{index}.polygon: zone {zone.name} lies outside the {width}x{height} frame; redraw it with "
                "`edge-agent zones` on a snapshot of this camera (or set frame_size to the snapshot's size)"
            )
        low = zone.min_box_width * sx if zone.min_box_width is not None else 0.0
        high = zone.max_box_width * sx if zone.max_box_width is not None else float("inf")
        zones.append(Zone(zone, polygon, low, high))
    for a, b, share in overlapping_zones(zones, width, height):
        logger.warning(
            "zones %s and %s overlap (%.0f%% of the smaller): a product in both is counted once, in the smaller zone",
            a,
            b,
            100 * share,
        )
    return zones


def overlapping_zones(zones: Sequence[Zone], width: int, height: int) -> list[tuple[str, str, float]]:
    """Pairs of zones sharing more than 1% of the smaller one's area, with that share.

    Sampled at pixel centres of a ~256-pixel grid with the counting rule itself, so zones that only share an edge
    (a grid) do not overlap.
    """
    step = max(width, height, 1) / 256.0
    xs, ys = np.meshgrid(np.arange(step / 2, width, step), np.arange(step / 2, height, step))
    grid = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    masks = [_inside(grid, zone.edges) for zone in zones]
    found = []
    for i in range(len(zones)):
        for j in range(i + 1, len(zones)):
            smaller = min(int(masks[i].sum()), int(masks[j].sum()))
            shared = int(np.count_nonzero(masks[i] & masks[j]))
            if smaller and shared > 0.01 * smaller:
                found.append((zones[i].config.name, zones[j].config.name, shared / smaller))
    return found


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
        self._areas = np.zeros(0, np.float64)
        self._widths = np.zeros((2, 0), np.float32)
        self.smoothers = {z.name: CountSmoother(config.smoothing, config.smoothing_frames) for z in config.zones}
        self.trackers = {z.name: StockTracker(z, config.debounce_frames, config.event_cooldown_s) for z in config.zones}
        self.over_capacity = {z.name: False for z in config.zones}

    def zones(self, width: int, height: int) -> list[Zone]:
        if self._size != (width, height):
            self._zones = zones_for_frame(self.config, width, height)
            self._size = (width, height)
            # Every zone's edges side by side: one vectorised point-in-polygon pass for all zones per frame.
            self._edges = np.concatenate([z.edges for z in self._zones], axis=1)
            self._starts = np.cumsum([0] + [z.edges.shape[1] for z in self._zones[:-1]])
            self._areas = np.array([z.area for z in self._zones], np.float64)
            self._widths = np.array([[z.min_width for z in self._zones], [z.max_width for z in self._zones]])
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

    def assign(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes x zones: the one zone each box counts in (its centre inside, its width within the zone's limits).

        A box whose centre lies in overlapping zones counts once, in the smallest of them (the most specific).
        """
        widths = (boxes[:, 2] - boxes[:, 0])[:, None]
        inside = self.membership(_centres(boxes))
        inside &= (widths >= self._widths[0][None, :]) & (widths <= self._widths[1][None, :])
        owner = inside.any(axis=1)
        best = np.where(inside, self._areas[None, :], np.inf).argmin(axis=1)
        single = np.zeros_like(inside)
        single[np.flatnonzero(owner), best[owner]] = True
        return single

    def update(
        self, boxes: np.ndarray, width: int, height: int, now: float
    ) -> tuple[list[ZoneCount], list[EventDraft]]:
        """Counts and events for one frame's boxes (n x 4, x1 y1 x2 y2 in frame pixels)."""
        counts, events = [], []
        zones = self.zones(width, height)
        centres = _centres(boxes)
        owned = self.assign(boxes)
        for k, zone in enumerate(zones):
            name = zone.config.name
            raw, per_row = zone.split_rows(centres[owned[:, k]])
            smoothed = self.smoothers[name].update(raw)
            tracker = self.trackers[name]
            event = tracker.update(smoothed, now)
            if event is not None:
                events.append(event)
            over = self._flag_over_capacity(zone.config, smoothed)
            counts.append(
                # Built from validated config and ints: skip re-validation on every frame of every zone.
                ZoneCount.model_construct(
                    zone=name,
                    count=smoothed,
                    raw_count=raw,
                    capacity=zone.config.capacity,
                    state="over" if over else tracker.state or stock_state(smoothed, zone.config),
                    over_capacity=over,
                    facings_per_row=per_row,
                )
            )
        return counts, events

    def _flag_over_capacity(self, zone: ZoneConfig, count: int) -> bool:
        """More facings than the zone holds: the count is not trusted (a misdrawn zone or split boxes)."""
        over = zone.capacity is not None and count > zone.capacity
        if over != self.over_capacity[zone.name]:
            if over:
                logger.warning(
                    "zone %s counts %d facings, above its capacity %d: check the zone, capacity and min/max_box_width",
                    zone.name,
                    count,
                    zone.capacity,
                )
            else:
                logger.info("zone %s is back within its capacity", zone.name)
        self.over_capacity[zone.name] = over
        return over


def _centres(boxes: np.ndarray) -> np.ndarray:
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1).reshape(-1, 2)
