"""Shelf counting logic: zones, rows, smoothing against a passing arm, debounced stock events, frame sizes."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent.errors import DataError
from edge_agent.tasks.shelf.config import ShelfTaskConfig, ZoneConfig
from edge_agent.tasks.shelf.logic import CountSmoother, ShelfCounter, points_in_polygon

SQUARE = [(0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0)]


def config(**extra: object) -> ShelfTaskConfig:
    zones = [
        {"name": "cola", "polygon": SQUARE, "capacity": 6, "low_stock": 2, "rows": 2},
        {"name": "water", "polygon": [(100, 0), (200, 0), (200, 100), (100, 100)], "low_stock": 1},
    ]
    return ShelfTaskConfig.model_validate({"kind": "shelf", "zones": zones, **extra})


def centres(n_cola: int, n_water: int = 3) -> np.ndarray:
    cola = [(10 + 15 * i, 25 if i % 2 else 75) for i in range(n_cola)]
    water = [(150, 20 + 20 * i) for i in range(n_water)]
    return np.array(cola + water, dtype=np.float32).reshape(-1, 2)


def test_point_in_polygon_handles_concave_shapes() -> None:
    l_shape = np.array([(0, 0), (100, 0), (100, 40), (40, 40), (40, 100), (0, 100)], np.float32)
    points = np.array([(20, 20), (80, 20), (80, 80), (20, 80), (150, 20)], np.float32)
    assert points_in_polygon(points, l_shape).tolist() == [True, True, False, True, False]


def test_counts_per_zone_and_per_row() -> None:
    counter = ShelfCounter(config(smoothing_frames=1))
    counts, _ = counter.update(centres(5), 640, 480, now=0.0)
    cola, water = counts
    assert (cola.zone, cola.count, cola.raw_count, cola.capacity) == ("cola", 5, 5, 6)
    assert cola.facings_per_row == [2, 3]  # top band, bottom band
    assert water.count == 3 and water.facings_per_row == [3]


def test_median_smoothing_ignores_an_arm_passing_for_two_frames() -> None:
    counter = ShelfCounter(config(smoothing_frames=5, debounce_frames=2))
    seen, events = [], []
    for raw in [6, 6, 6, 6, 1, 0, 6, 6, 6]:  # an arm covers the zone for two frames
        counts, ev = counter.update(centres(raw), 640, 480, now=0.0)
        seen.append(counts[0].count)
        events += ev
    assert seen == [6, 6, 6, 6, 6, 6, 6, 6, 6]
    assert events == []


def test_hysteresis_changes_only_after_a_consistent_run() -> None:
    smoother = CountSmoother("hysteresis", 3)
    values = [smoother.update(v) for v in [5, 5, 2, 5, 2, 2, 2, 2]]
    assert values == [5, 5, 5, 5, 5, 5, 2, 2]


def test_stock_events_low_out_restocked_with_debounce() -> None:
    counter = ShelfCounter(config(smoothing_frames=1, debounce_frames=3))
    log = []
    sequence = [6] * 3 + [2] * 4 + [0] * 4 + [6] * 4
    for t, raw in enumerate(sequence):
        counts, events = counter.update(centres(raw), 640, 480, now=float(t))
        log += [(t, e.event, e.subject, e.details) for e in events]
    assert [(t, name) for t, name, _, _ in log] == [(5, "low_stock"), (9, "out_of_stock"), (13, "restocked")]
    assert all(subject == "cola" for _, _, subject, _ in log)
    assert log[0][3] == {"count": 2, "previous": 6, "low_stock_at": 2}
    assert log[2][3] == {"count": 6, "previous": 0, "low_stock_at": 2}
    assert counts[0].state == "ok"


def test_a_state_that_does_not_hold_raises_nothing() -> None:
    counter = ShelfCounter(config(smoothing_frames=1, debounce_frames=3))
    events = []
    for raw in [6, 6, 6, 2, 2, 6, 2, 6, 6]:
        events += counter.update(centres(raw), 640, 480, now=0.0)[1]
    assert events == []


def test_an_empty_zone_at_start_is_reported_once() -> None:
    counter = ShelfCounter(config(smoothing_frames=1, debounce_frames=2))
    events = []
    for t in range(6):
        events += counter.update(centres(0, n_water=2), 640, 480, now=float(t))[1]
    assert [(e.event, e.subject) for e in events] == [("out_of_stock", "cola")]


def test_cooldown_spaces_events_of_a_zone() -> None:
    counter = ShelfCounter(config(smoothing_frames=1, debounce_frames=1, event_cooldown_s=10.0))
    events = []
    for t, raw in enumerate([6, 2, 6, 2, 6]):
        events += [(t, e.event) for e in counter.update(centres(raw), 640, 480, now=float(t))[1] if e.subject == "cola"]
    assert events == [(1, "low_stock")]


def test_frames_of_another_size_scale_the_zones_or_are_refused() -> None:
    counter = ShelfCounter(config(smoothing_frames=1, frame_size=(640, 480)))
    doubled = centres(4) * 2
    counts, _ = counter.update(doubled, 1280, 960, now=0.0)
    assert [c.count for c in counts] == [4, 3]
    with pytest.raises(DataError, match=r"1280x720 .* drawn on 640x480"):
        counter.update(doubled, 1280, 720, now=1.0)


def test_config_rejects_duplicate_zones_and_low_stock_above_capacity() -> None:
    with pytest.raises(ValidationError, match="repeated: a"):
        ShelfTaskConfig.model_validate(
            {"kind": "shelf", "zones": [{"name": "a", "polygon": SQUARE}, {"name": "a", "polygon": SQUARE}]}
        )
    with pytest.raises(ValidationError, match="low_stock"):
        ZoneConfig(name="a", polygon=SQUARE, capacity=2, low_stock=2)


def test_all_zones_at_once_agree_with_one_zone_at_a_time() -> None:
    rng = np.random.default_rng(4)
    zones = []
    for i in range(6):  # overlapping, irregular quadrilaterals
        cx, cy = rng.uniform(100, 500, 2)
        angles = np.sort(rng.uniform(0, 2 * np.pi, 5))
        radius = rng.uniform(40, 160, 5)
        polygon = [(float(cx + r * np.cos(a)), float(cy + r * np.sin(a))) for a, r in zip(angles, radius)]
        zones.append({"name": f"z{i}", "polygon": polygon})
    counter = ShelfCounter(ShelfTaskConfig.model_validate({"kind": "shelf", "zones": zones}))
    points = rng.uniform(0, 640, (300, 2)).astype(np.float32)
    counter.zones(640, 640)
    together = counter.membership(points)
    for k, zone in enumerate(zones):
        alone = points_in_polygon(points, np.asarray(zone["polygon"], np.float32))
        assert together[:, k].tolist() == alone.tolist()
    assert together.any(axis=0).all()
