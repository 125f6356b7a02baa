"""Close-up frames for training and benchmarks: one to three large products (a third of the frame height to more
than all of it, cut by the frame's edge) in front of a stocked shelf or clutter, often held by a hand.

The hard composer's rows keep a tall package under the frame's height, so its products never filled more than
about a third of a landscape frame's width; real photos of one product (held up to the camera, standing on a
desk) do, in portrait and square frames too. Products behind the large ones stay labelled where at least half of
them still shows: they are products too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from edge_agent.errors import DataError
from edge_agent.tasks.shelf import compose_fx as fx
from edge_agent.tasks.shelf.compose import (
    ProductLibrary,
    Shelf,
    Sprite,
    _iconic_sprite,
    _in_split,
    _photo_sprite,
    whole_frame_zone,
)
from edge_agent.tasks.shelf.compose_hard import HardShelfComposer, _rotate


@dataclass(frozen=True)
class CloseupLayout:
    """Ranges of the close-up composer."""

    width: tuple[int, int] = (360, 960)
    aspect: tuple[float, float] = (0.7, 1.5)  # height / width: landscape to portrait
    product_height: tuple[float, float] = (0.35, 1.15)  # share of the frame height
    counts: tuple[float, float, float] = (0.7, 0.2, 0.1)  # chance of 1, 2 or 3 large products
    shelf_behind_p: float = 0.7  # otherwise a drawn wall with clutter and no product behind
    hand_p: float = 0.5
    slab_p: float = 0.0  # chance that each large thing in front is a plain slab of texture, not a product
    rotation_deg: float = 15.0
    perspective: float = 0.06


FRONT_MAX = 400  # front sprites are kept this large: a close-up shows a package at up to the frame's height


def package_sprites(root: Path, split: str = "train", holdout_share: float = 0.2) -> ProductLibrary:
    """Single products for the front: every iconic cut-out and the middle of each in-store photo of a package.

    The in-store photos of fruit and vegetables show a bin of many; blown up to a third of the frame they would
    teach that a pile of apples is one product, so only the packages' photos are cut here.
    """
    iconic = sorted((root / "iconic-images-and-descriptions").rglob("*.jpg"))
    sprites = [s for s in (_iconic_sprite(p, FRONT_MAX) for p in iconic if _in_split(p, split, holdout_share)) if s]
    for path in sorted((root / "train" / "Packages").rglob("*.jpg")):
        image = cv2.imread(str(path)) if _in_split(path, split, holdout_share) else None
        if image is not None:
            sprites.append(_photo_sprite(image, path.stem, FRONT_MAX))
    if not sprites:
        raise DataError(f"{root}: no product images for close-ups (expected the Grocery Store Dataset)")
    return ProductLibrary(sprites, [])


class CloseupComposer:
    """Draws close-ups; `compose` returns a `Shelf` with one zone over the whole frame."""

    def __init__(self, hard: HardShelfComposer, front: ProductLibrary, layout: CloseupLayout | None = None) -> None:
        self.hard = hard
        self.front = front.sprites
        self.layout = layout or CloseupLayout()
        self._behind = HardShelfComposer(hard.library, hard.photos, replace(hard.layout, facing_width=(0.03, 0.15)))

    def compose(self, rng: np.random.Generator) -> Shelf:
        lay = self.layout
        width = int(rng.integers(lay.width[0], lay.width[1] + 1))
        height = int(width * rng.uniform(*lay.aspect))
        canvas, behind = self._background(rng, width, height)
        placed = [self._place(canvas, rng, rng.random() < lay.slab_p) for _ in range(self._count(rng))]
        front = np.asarray([box for box, _ in placed], np.float32).reshape(-1, 4)
        hand = fx.draw_occluder(canvas, rng) if rng.random() < lay.hand_p else np.zeros((height, width), np.uint8)
        products = [i for i, (_, product) in enumerate(placed) if product]
        shown = [fx.visible_share(hand | _rectangles(front, hand.shape), behind)]  # what the things in front hide
        shown += [fx.visible_share(hand | _rectangles(front[i + 1 :], hand.shape), front[i : i + 1]) for i in products]
        boxes = np.concatenate([behind, front[products]])[np.concatenate(shown) >= 0.5]
        image, boxes, _ = fx.camera(canvas, rng, boxes, [], lay.perspective)
        image, boxes, _ = _rotate(image, boxes, [], rng.uniform(-lay.rotation_deg, lay.rotation_deg))
        image = self.hard._colour(image, rng)
        inside = fx.inside_share(boxes, image.shape, 0.5)
        boxes = fx.clip_boxes(boxes, image.shape)[inside]
        zone = whole_frame_zone(image.shape[1], image.shape[0])
        return Shelf(image, boxes, [zone], [0], np.zeros(len(boxes), np.int64))

    def _count(self, rng: np.random.Generator) -> int:
        return int(rng.choice(3, p=np.asarray(self.layout.counts) / sum(self.layout.counts))) + 1

    def _background(self, rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """A stocked shelf (its boxes kept) or a product-free wall, resized to the frame."""
        products = rng.random() < self.layout.shelf_behind_p
        shelf = self._behind.compose(rng, products=products)
        sy, sx = height / shelf.image.shape[0], width / shelf.image.shape[1]
        image = cv2.resize(shelf.image, (width, height), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.4:  # the camera focuses on the product in front
            image = cv2.GaussianBlur(image, (0, 0), rng.uniform(1.0, 4.0))
        boxes = shelf.boxes.reshape(-1, 4) * np.array([sx, sy, sx, sy], np.float32)
        return np.ascontiguousarray(image), boxes.astype(np.float32)

    def _place(self, canvas: np.ndarray, rng: np.random.Generator, slab: bool) -> tuple[list[float], bool]:
        """Paste one large product (or an unlabelled slab of texture, a product's size and shape), maybe cut by
        the frame; returns its box in canvas pixels (unclipped) and whether it is a product."""
        height, width = canvas.shape[:2]
        sprite = self._slab(rng) if slab else self.front[int(rng.integers(len(self.front)))]
        aspect = sprite.image.shape[1] / sprite.image.shape[0] * rng.uniform(0.85, 1.15)
        ph = height * rng.uniform(*self.layout.product_height)
        pw = min(ph * aspect, 0.9 * width)
        ph = pw / aspect
        x = rng.uniform(-0.15 * pw, width - 0.85 * pw)
        y = rng.uniform(min(0.0, height - ph), max(0.0, height - ph))  # inside the frame, or cut at both ends
        face = fx.prepare_face(sprite, round(pw), round(ph), rng)
        fx.paste(canvas, face, round(x), round(y))
        return [x, y, x + pw, y + ph], not slab

    def _slab(self, rng: np.random.Generator) -> Sprite:
        """A drawn wall texture (metal, wood, fabric, grid) cut like a package: a big plain thing is no product."""
        photos = self.hard.photos
        image = photos[int(rng.integers(len(photos)))] if photos else np.full((64, 48, 3), 128, np.uint8)
        h, w = image.shape[:2]
        ch, cw = int(h * rng.uniform(0.5, 1.0)), int(w * rng.uniform(0.3, 1.0))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = np.ascontiguousarray(image[y0 : y0 + ch, x0 : x0 + cw])
        if rng.random() < 0.5:
            crop = np.asarray(cv2.cvtColor(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR))
        return Sprite(crop, fx.package_alpha(ch, cw), "slab")


def _rectangles(boxes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A mask of the boxes' areas (clipped to the frame)."""
    mask = np.zeros(shape[:2], np.uint8)
    for x0, y0, x1, y1 in fx.clip_boxes(boxes.reshape(-1, 4), shape).round().astype(int).tolist():
        mask[y0:y1, x0:x1] = 255
    return mask
