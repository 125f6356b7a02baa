"""The real close-up benchmark's tallies: the located product found, split, and the boxes elsewhere."""

from __future__ import annotations

import numpy as np

from bench.shelf_closeups import Tally, _plausible

PRODUCT = np.array([100, 50, 200, 300], np.float32)


def test_a_box_over_the_product_finds_it_and_boxes_beside_it_count_elsewhere() -> None:
    tally = Tally()
    tally.add(np.array([[95, 45, 205, 310], [300, 40, 340, 120]], np.float32), PRODUCT)
    assert (tally.found, tally.split, tally.elsewhere, tally.labelled, tally.boxes) == (1, 0, 1, 1, 2)


def test_two_halves_of_one_product_split_it_and_do_not_find_it() -> None:
    tally = Tally()
    tally.add(np.array([[100, 50, 200, 170], [100, 180, 200, 300]], np.float32), PRODUCT)
    assert (tally.found, tally.split, tally.elsewhere) == (0, 1, 0)


def test_photos_without_a_located_product_count_boxes_only() -> None:
    tally = Tally()
    tally.add(np.zeros((0, 4), np.float32), None)
    tally.add(np.zeros((0, 4), np.float32), PRODUCT)
    assert (tally.photos, tally.no_box, tally.labelled, tally.found) == (2, 2, 1, 0)
    assert "| 0.00 | 2 | 1 | 0.0% |" in tally.row("m | v | 0.35")


def test_only_a_convex_large_outline_is_trusted() -> None:
    shape = (400, 300, 3)
    square = np.array([[50, 50], [250, 50], [250, 350], [50, 350]], np.float32)
    bowtie = np.array([[50, 50], [250, 350], [250, 50], [50, 350]], np.float32)
    tiny = square / 10
    box = _plausible(square, shape)
    assert box is not None and np.allclose(box, [50, 50, 250, 350])
    assert _plausible(bowtie, shape) is None and _plausible(tiny, shape) is None
