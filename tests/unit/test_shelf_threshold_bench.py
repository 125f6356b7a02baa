"""The threshold benchmark's figures at one score: counts, recall and boxes on product-free frames."""

from __future__ import annotations

import numpy as np

from bench.shelf_accuracy import Frame, zone_counts
from bench.shelf_threshold import at_threshold
from edge_agent.tasks.detection import Detections
from edge_agent.tasks.shelf.compose import Shelf

ZONE = np.array([[0, 0], [100, 0], [100, 100], [0, 100]], np.float32)


def _frame(boxes: list[list[float]], photo: bool = False) -> Frame:
    truth = np.asarray(boxes, np.float32).reshape(-1, 4)
    shelf = Shelf(np.zeros((100, 100, 3), np.uint8), truth, [ZONE], [0], np.zeros(0, np.int64))
    return Frame(shelf, zone_counts(truth, [ZONE]), photo)


def _dets(boxes: list[list[float]], scores: list[float]) -> Detections:
    return Detections(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32),
                      np.zeros(len(scores), np.int64))  # fmt: skip


def test_a_higher_threshold_drops_the_weak_false_box_and_keeps_the_product() -> None:
    frames = [_frame([[10, 10, 40, 40]]), _frame([])]
    dets = [_dets([[10, 10, 40, 40]], [0.9]), _dets([[50, 50, 70, 70]], [0.4])]
    low, high = at_threshold(frames, dets, 0.35), at_threshold(frames, dets, 0.45)
    assert low == {"count_mae": 0.5, "precision": 0.5, "recall": 1.0, "boxes_per_free_frame": 1.0}
    assert high == {"count_mae": 0.0, "precision": 1.0, "recall": 1.0, "boxes_per_free_frame": 0.0}


def test_where_a_set_has_real_photos_only_they_count_as_product_free() -> None:
    frames = [_frame([], photo=True), _frame([])]
    dets = [_dets([[0, 0, 9, 9]], [0.5]), _dets([[0, 0, 9, 9], [20, 20, 30, 30]], [0.5, 0.5])]
    assert at_threshold(frames, dets, 0.35)["boxes_per_free_frame"] == 1.0
