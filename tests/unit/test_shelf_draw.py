"""Zone tinting blends only the zone's bounding box, with the same pixels a whole-frame blend gives; a zone's
snapshot drawn on its own pixels is the same picture as the zone cut from the whole drawn frame."""

from __future__ import annotations

import cv2
import numpy as np

from edge_agent.messages import ZoneCount
from edge_agent.tasks.shelf.draw import render, render_region, tint


def whole_frame_tint(image: np.ndarray, polygon: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    overlay = image.copy()
    cv2.fillPoly(overlay, [polygon], colour)
    return cv2.addWeighted(overlay, 0.25, image, 0.75, 0)


def test_tinting_a_zone_matches_the_whole_frame_blend_and_leaves_the_rest_alone() -> None:
    frame = np.random.default_rng(3).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    polygons = [
        np.array([[100, 80], [400, 90], [380, 300], [90, 280]], np.int32),  # inside the frame
        np.array([[1200, 650], [1400, 650], [1400, 800], [1200, 800]], np.int32),  # past the bottom-right corner
        np.array([[-50, -40], [60, -40], [60, 50], [-50, 50]], np.int32),  # past the top-left corner
    ]
    for polygon in polygons:
        want = whole_frame_tint(frame, polygon, (40, 40, 230))
        got = frame.copy()
        tint(got, polygon, (40, 40, 230))
        assert np.array_equal(got, want)
        assert (got != frame).any()  # the zone did change


def test_a_zone_wholly_outside_the_frame_changes_nothing() -> None:
    frame = np.full((100, 200, 3), 90, np.uint8)
    got = frame.copy()
    tint(got, np.array([[300, 10], [350, 10], [350, 60], [300, 60]], np.int32), (0, 0, 255))
    assert np.array_equal(got, frame)


def test_a_region_drawn_on_its_own_pixels_is_the_region_of_the_whole_drawing() -> None:
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    corners = rng.uniform(-40, 1240, (60, 2))
    boxes = np.hstack([corners, corners + rng.uniform(20, 160, (60, 2))]).astype(np.float32)
    boxes[:4] += 0.5  # ties: rounding before the shift, as `render` does, keeps them on the same pixels
    polygons = [
        np.array([[x, y], [x + 426.5, y], [x + 426.5, y + 240], [x, y + 240]])
        for y in (0, 240, 480)
        for x in (0.0, 426.5, 853.0)
    ]
    names = [f"z{i}" for i in range(len(polygons))]
    states = ["ok", "low", "out"]
    counts = [ZoneCount(zone=n, count=i, raw_count=i, capacity=8, state=states[i % 3]) for i, n in enumerate(names)]
    whole = render(frame, boxes, polygons, names, counts)
    for region in [(402, 216, 877, 504), (0, 0, 451, 264), (829, 456, 1280, 720), (0, 0, 1280, 720)]:
        left, top, right, bottom = region
        got = render_region(frame, region, boxes, polygons, names, counts)
        assert np.array_equal(got, whole[top:bottom, left:right]), region
    assert not np.array_equal(whole, frame)  # something was drawn
