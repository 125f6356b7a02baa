"""The drawn walls and clutter that replace texture photos in the shelf detector's training frames."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.tasks.shelf.compose import ProductLibrary
from edge_agent.tasks.shelf.compose_hard import HardShelfComposer
from edge_agent.tasks.shelf.compose_walls import DRAWERS, Drawer, procedural_texture, texture_bank


@pytest.mark.parametrize("drawer", sorted(set(DRAWERS), key=lambda d: d.__name__), ids=lambda d: d.__name__)
def test_every_family_draws_a_picture_with_structure(drawer: Drawer) -> None:
    for seed in range(3):
        image = np.clip(drawer(np.random.default_rng(seed), 120, 200), 0, 255)
        assert image.shape == (120, 200, 3)
        # Not a flat colour: the point of a wall texture is edges and repetitions the detector must reject.
        assert float(np.abs(np.diff(image.astype(np.float32), axis=1)).mean()) > 0.05


def test_textures_are_8_bit_frames_of_the_asked_size() -> None:
    image = procedural_texture(np.random.default_rng(0), 90, 160)
    assert image.dtype == np.uint8 and image.shape == (90, 160, 3)


def test_the_bank_is_reproducible_from_its_seed() -> None:
    a, b, c = texture_bank(5, count=6, longest=96), texture_bank(5, count=6, longest=96), texture_bank(6, 6, 96)
    assert len(a) == 6 and all(max(t.shape[:2]) <= 96 for t in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_hard_shelves_on_drawn_walls_label_products_only() -> None:
    composer = HardShelfComposer(ProductLibrary.procedural(seed=1), texture_bank(2, count=8, longest=160))
    rng = np.random.default_rng(3)
    empty = composer.compose(rng, products=False)
    assert len(empty.boxes) == 0
    shelf = composer.compose(rng)
    h, w = shelf.image.shape[:2]
    assert len(shelf.boxes) > 0
    assert (shelf.boxes[:, [0, 2]] <= w).all() and (shelf.boxes[:, [1, 3]] <= h).all()
