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


def centres(n_cola: int, n_water: int = 3, width: float = 10.0) -> np.ndarray:
    """Boxes (x1 y1 x2 y2) of `width` around the facings' centres: n_cola in two rows, n_water in a column."""
    cola = [(10 + 15 * i, 25 if i % 2 else 75) for i in range(n_cola)]
    water = [(150, 20 + 20 * i) for i in range(n_water)]
    points = np.array(cola + water, dtype=np.float32).reshape(-1, 2)
    return boxes_at(points, width)


def boxes_at(points: np.ndarray, width: float = 10.0) -> np.ndarray:
    half = np.float32(width / 2)
    return np.concatenate([points - half, points + half], axis=1)


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


def test_frames_of_another_size_or_aspect_still_count() -> None:
    counter = ShelfCounter(config(smoothing_frames=1, frame_size=(640, 480)))
    doubled = centres(4) * 2
    counts, _ = counter.update(doubled, 1280, 960, now=0.0)
    assert [c.count for c in counts] == [4, 3]
    wide = centres(4) * np.array([2.0, 1.5, 2.0, 1.5], np.float32)  # 1280x720: the same view, stretched
    counts, _ = counter.update(wide, 1280, 720, now=1.0)
    assert [c.count for c in counts] == [4, 3]


def test_normalized_zones_count_at_any_resolution() -> None:
    zones = [
        {"name": "cola", "polygon": [(0, 0), (0.5, 0), (0.5, 1), (0, 1)]},
        {"name": "water", "polygon": [(0.5, 0), (1, 0), (1, 1), (0.5, 1)], "max_box_width": 0.2},
    ]
    cfg = ShelfTaskConfig.model_validate({"kind": "shelf", "coordinates": "normalized", "zones": zones})
    for width, height in [(640, 480), (1920, 1080), (300, 900)]:
        counter = ShelfCounter(cfg)
        points = np.array([[0.1, 0.5], [0.3, 0.5], [0.7, 0.5]], np.float32) * np.array([width, height], np.float32)
        counts, _ = counter.update(boxes_at(points, 0.1 * width), width, height, now=0.0)
        assert [c.count for c in counts] == [2, 1]
        too_wide = boxes_at(points[2:], 0.3 * width)  # wider than water's max_box_width
        assert [c.count for c in ShelfCounter(cfg).update(too_wide, width, height, 0.0)[0]] == [0, 0]


def test_zones_outside_the_frame_name_the_field() -> None:
    with pytest.raises(ValidationError, match=r"zones\.1\.polygon: vertex \(1\.5, 0\) of zone b .*0\.\.1"):
        ShelfTaskConfig.model_validate(
            {
                "kind": "shelf",
                "coordinates": "normalized",
                "zones": [
                    {"name": "a", "polygon": [(0, 0), (1, 0), (1, 1)]},
                    {"name": "b", "polygon": [(1.5, 0), (1, 0), (1, 1)]},
                ],
            }
        )
    with pytest.raises(ValidationError, match=r"zones\.0\.polygon: .* outside frame_size 640x480"):
        ShelfTaskConfig.model_validate(
            {
                "kind": "shelf",
                "frame_size": (640, 480),
                "zones": [{"name": "a", "polygon": [(0, 0), (700, 0), (700, 100)]}],
            }
        )
    counter = ShelfCounter(config())  # pixel zones without frame_size: checked against the first frame
    with pytest.raises(DataError, match=r"zones\.1\.polygon: zone water lies outside the 90x90 frame"):
        counter.update(centres(1), 90, 90, now=0.0)


def test_count_above_capacity_is_flagged_not_ok(caplog: pytest.LogCaptureFixture) -> None:
    counter = ShelfCounter(config(smoothing_frames=1))
    cola = counter.update(centres(6), 640, 480, now=0.0)[0][0]
    assert (cola.state, cola.over_capacity) == ("ok", False)
    eight = boxes_at(np.array([(5 + 12 * i, 50) for i in range(8)], np.float32))
    cola = counter.update(eight, 640, 480, now=1.0)[0][0]  # capacity is 6
    assert (cola.count, cola.state, cola.over_capacity) == (8, "over", True)
    assert "above its capacity 6" in caplog.text
    cola = counter.update(centres(5), 640, 480, now=2.0)[0][0]
    assert (cola.state, cola.over_capacity) == ("ok", False)


def test_a_box_in_overlapping_zones_counts_once_in_the_smaller(caplog: pytest.LogCaptureFixture) -> None:
    zones = [
        {"name": "row", "polygon": [(0, 0), (200, 0), (200, 100), (0, 100)]},
        {"name": "slot", "polygon": [(50, 0), (150, 0), (150, 100), (50, 100)]},
    ]
    counter = ShelfCounter(ShelfTaskConfig.model_validate({"kind": "shelf", "zones": zones, "smoothing_frames": 1}))
    points = np.array([[20, 50], [100, 50], [120, 50], [180, 50]], np.float32)
    counts, _ = counter.update(boxes_at(points), 640, 480, now=0.0)
    assert [(c.zone, c.count) for c in counts] == [("row", 2), ("slot", 2)]
    assert "zones row and slot overlap (100% of the smaller)" in caplog.text


def test_zones_sharing_an_edge_do_not_overlap() -> None:
    counter = ShelfCounter(config())
    from edge_agent.tasks.shelf.logic import overlapping_zones

    assert overlapping_zones(counter.zones(640, 480), 640, 480) == []


def test_min_box_width_ignores_specks() -> None:
    zones = [{"name": "a", "polygon": SQUARE, "min_box_width": 8}]
    counter = ShelfCounter(ShelfTaskConfig.model_validate({"kind": "shelf", "zones": zones, "smoothing_frames": 1}))
    points = np.array([[20, 50], [60, 50]], np.float32)
    boxes = np.concatenate([boxes_at(points[:1], 4), boxes_at(points[1:], 12)])
    assert counter.update(boxes, 640, 480, now=0.0)[0][0].count == 1


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
