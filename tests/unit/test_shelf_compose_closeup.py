"""Close-up training and benchmark frames: large products in front, what they hide behind them unlabelled."""

from __future__ import annotations

import numpy as np

from edge_agent.tasks.shelf.compose import ProductLibrary
from edge_agent.tasks.shelf.compose_closeup import CloseupComposer, CloseupLayout
from edge_agent.tasks.shelf.compose_hard import HardShelfComposer
from edge_agent.tasks.shelf.compose_walls import texture_bank


def _composer(layout: CloseupLayout) -> CloseupComposer:
    library = ProductLibrary.procedural(seed=1)
    return CloseupComposer(HardShelfComposer(library, texture_bank(2, count=8, longest=160)), library, layout)


def test_a_close_up_with_nothing_behind_labels_its_large_products_in_one_whole_frame_zone() -> None:
    composer = _composer(CloseupLayout(shelf_behind_p=0.0, hand_p=0.0, rotation_deg=0.0, perspective=0.0))
    rng = np.random.default_rng(4)
    heights = []
    for _ in range(12):
        shot = composer.compose(rng)
        h, w = shot.image.shape[:2]
        assert 1 <= len(shot.boxes) <= 3
        assert (shot.boxes >= 0).all() and (shot.boxes[:, [0, 2]] <= w).all() and (shot.boxes[:, [1, 3]] <= h).all()
        assert len(shot.zones) == 1 and np.array_equal(shot.zones[0], [[0, 0], [w, 0], [w, h], [0, h]])
        heights += ((shot.boxes[:, 3] - shot.boxes[:, 1]) / h).tolist()
    # Far larger than a shelf's facings: the point of the set is products that fill much of the frame.
    assert np.median(heights) > 0.3


def test_products_behind_stay_labelled_only_where_the_front_ones_leave_them_visible() -> None:
    layout = CloseupLayout(shelf_behind_p=1.0, hand_p=0.0, counts=(1.0, 0.0, 0.0), rotation_deg=0.0, perspective=0.0)
    composer = _composer(layout)  # unturned, so a box inside the front product's box is behind it
    rng = np.random.default_rng(7)
    shots = [composer.compose(rng) for _ in range(8)]
    assert all(len(s.boxes) >= 1 for s in shots)
    assert sum(len(s.boxes) for s in shots) > 8 + 8  # the stocked shelves behind add labelled products
    for shot in shots:
        front = shot.boxes[np.argmax(np.prod(shot.boxes[:, 2:] - shot.boxes[:, :2], axis=1))]
        others = shot.boxes[~np.all(shot.boxes == front, axis=1)]
        # A product wholly inside the front product's box is hidden by it: it must not be labelled.
        assert not (np.all(others[:, :2] >= front[:2], axis=1) & np.all(others[:, 2:] <= front[2:], axis=1)).any()


def test_slabs_of_plain_texture_in_front_are_never_labelled() -> None:
    composer = _composer(CloseupLayout(shelf_behind_p=0.0, slab_p=1.0))
    rng = np.random.default_rng(2)
    shots = [composer.compose(rng) for _ in range(6)]
    assert all(len(s.boxes) == 0 for s in shots)
    # The same draws with products in front label them: the slab, not the layout, leaves the frame unlabelled.
    products = _composer(CloseupLayout(shelf_behind_p=0.0, slab_p=0.0, hand_p=0.0))
    assert all(len(products.compose(rng).boxes) >= 1 for _ in range(6))
