"""A harder shelf composer for training and benchmarks: products from 3% to 60% of the frame width, real-photo
backgrounds, unlabelled clutter, colour casts and grayscale, rotation, occluding arms and price tags, 1-40 facings.

The plain `ShelfComposer` draws products 13-51 px wide on flat or blurred walls; a detector trained only on it
never learns what is *not* a product. Here every frame may carry real texture photos (metal surfaces, solar-cell
images, blurred store photos) as the wall and as unlabelled objects in front of it, so they are negatives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_agent.errors import DataError
from edge_agent.tasks.shelf import compose_fx as fx
from edge_agent.tasks.shelf.compose import Placement, ProductLibrary, Scene, Shelf, _fit, _in_split


@dataclass(frozen=True)
class HardLayout:
    """Ranges of the hard composer."""

    width: tuple[int, int] = (480, 1280)
    aspect: tuple[float, float] = (0.5, 1.0)  # height / width
    facing_width: tuple[float, float] = (0.03, 0.6)  # share of the frame width, drawn log-uniform
    max_facings: int = 40
    empty_slot_p: float = 0.1
    missing_facing_p: float = 0.06
    board_p: float = 0.75  # otherwise products stand on a table or in front of the wall
    photo_wall_p: float = 0.6
    clutter: tuple[int, int] = (0, 6)
    occluder_p: float = 0.4
    tag_p: float = 0.4
    rotation_deg: float = 10.0
    grayscale_p: float = 0.12
    cast: float = 0.3
    perspective: float = 0.05


def texture_photos(roots: list[Path], split: str, holdout_share: float = 0.2, limit: int = 400) -> list[np.ndarray]:
    """Real photos without products (texture data sets), split by a hash of the file name like the products."""
    photos: list[np.ndarray] = []
    for root in roots:
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
        for path in paths:
            if len(photos) >= limit * (roots.index(root) + 1):
                break
            if not _in_split(path.parent / f"{root.name}-{path.name}", split, holdout_share):
                continue
            image = cv2.imread(str(path))
            if image is not None:
                photos.append(_fit(image, 640))
    if not photos:
        raise DataError(f"no texture photos under {', '.join(map(str, roots))}")
    return photos


class HardShelfComposer:
    """Draws hard shelves; `compose` returns the same `Shelf` as the plain composer (boxes, slot zones)."""

    def __init__(self, library: ProductLibrary, photos: list[np.ndarray], layout: HardLayout | None = None) -> None:
        if not library.sprites:
            raise DataError("product library is empty")
        self.library = library
        self.photos = photos
        self.layout = layout or HardLayout()

    def compose(self, rng: np.random.Generator, products: bool = True) -> Shelf:
        lay = self.layout
        width = int(rng.integers(lay.width[0], lay.width[1] + 1))
        height = int(width * rng.uniform(*lay.aspect))
        scene = Scene(self._wall(rng, height, width), [], [], [])
        self._fill(scene, rng, products)
        canvas = scene.background.copy()
        for placement in scene.placements:
            fx.paste(canvas, placement.face, round(placement.x), round(placement.y))
        boxes = np.asarray([p.box for p in scene.placements], np.float32).reshape(-1, 4)
        covered = np.zeros((height, width), np.uint8)
        self._clutter(canvas, covered, rng)
        if rng.random() < lay.occluder_p:
            covered |= fx.draw_occluder(canvas, rng)
        visible = fx.visible_share(covered, boxes) >= 0.5
        image, boxes, zones = fx.camera(canvas, rng, boxes, scene.zones, lay.perspective)
        image, boxes, zones = _rotate(image, boxes, zones, rng.uniform(-lay.rotation_deg, lay.rotation_deg))
        image = self._colour(image, rng)
        keep = visible & fx.inside_share(boxes, image.shape, 0.6)
        box_zone = np.asarray([p.zone for p in scene.placements], np.int64)
        return Shelf(image, fx.clip_boxes(boxes, image.shape)[keep], zones, scene.zone_rows, box_zone[keep])

    def _wall(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        if not self.photos or rng.random() >= self.layout.photo_wall_p:
            return fx.back_wall(rng, height, width, self.library.textures)
        photo = self.photos[int(rng.integers(len(self.photos)))]
        wall = cv2.resize(photo, (width, height), interpolation=cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            wall = np.asarray(cv2.GaussianBlur(wall, (0, 0), rng.uniform(0.5, 4.0)))
        return np.asarray(np.clip(wall * rng.uniform(0.5, 1.2), 0, 255), dtype=np.uint8)

    def _fill(self, scene: Scene, rng: np.random.Generator, products: bool) -> None:
        """Rows from the top: each row's facing width around one draw from the scale range."""
        lay = self.layout
        height, width = scene.background.shape[:2]
        low, high = (math.log(v) for v in lay.facing_width)
        facing = width * math.exp(rng.uniform(low, high))
        boards = rng.random() < lay.board_p
        style = fx.board_style(rng)
        y = rng.uniform(0.0, 0.1) * height
        row = 0
        while True:
            fw = facing * rng.uniform(0.85, 1.15)
            row_h = min(fw * rng.uniform(1.2, 2.6), 0.95 * height)
            board_h = max(4.0, row_h * rng.uniform(0.06, 0.12)) if boards else 0.0
            if y + row_h + board_h > height and row > 0:
                break
            if products:
                self._fill_row(scene, rng, row, (y, min(y + row_h, height - board_h)), fw)
            if boards:
                fx.draw_board(scene.background, rng, int(y + row_h), int(y + row_h + board_h), style)
            y += row_h + board_h + rng.uniform(0, 0.05) * row_h
            row += 1

    def _fill_row(self, scene: Scene, rng: np.random.Generator, row: int, span: tuple[float, float], fw: float) -> None:
        lay = self.layout
        top, floor = span
        width = scene.background.shape[1]
        x = rng.uniform(0, 0.05) * width
        placed = 0
        while x < width * 0.97 and placed < lay.max_facings:
            sprite = self.library.sprites[int(rng.integers(len(self.library.sprites)))]
            aspect = sprite.image.shape[1] / sprite.image.shape[0] * rng.uniform(0.85, 1.15)
            pw = fw * rng.uniform(0.8, 1.2)
            ph = min(pw / aspect, (floor - top) * rng.uniform(0.85, 0.98))
            pw = float(np.clip(ph * aspect, 6.0, 0.7 * width))
            ph = pw / aspect
            gap = pw * rng.uniform(0.0, 0.08)
            count = int(rng.integers(1, max(2, lay.max_facings // 4)))
            count = max(1, min(count, int((width - x) // (pw + gap)), lay.max_facings - placed))
            if (width - x) < pw:
                break
            zone = len(scene.zones)
            slot_w = count * (pw + gap)
            scene.zones.append(np.array([[x, top], [x + slot_w, top], [x + slot_w, floor], [x, floor]], np.float32))
            scene.zone_rows.append(row)
            if rng.random() >= lay.empty_slot_p:
                face = fx.prepare_face(sprite, round(pw), round(ph), rng)
                for k in range(count):
                    if rng.random() >= lay.missing_facing_p:
                        left = x + k * (pw + gap) + rng.uniform(-0.5, 0.5) * gap
                        scene.placements.append(Placement(face, left, floor - ph, zone))
                        placed += 1
            x += slot_w + rng.uniform(0.005, 0.05) * width

    def _clutter(self, canvas: np.ndarray, covered: np.ndarray, rng: np.random.Generator) -> None:
        """Unlabelled things in front of the shelf: photo patches (ellipses, blocks), price tags, signs."""
        lay = self.layout
        h, w = canvas.shape[:2]
        for _ in range(int(rng.integers(lay.clutter[0], lay.clutter[1] + 1))):
            pw, ph = int(w * rng.uniform(0.04, 0.35)), int(h * rng.uniform(0.04, 0.35))
            x, y = int(rng.integers(-pw // 2, w)), int(rng.integers(-ph // 2, h))
            mask = np.zeros((h, w), np.uint8)
            if rng.random() < 0.5:
                cv2.ellipse(mask, (x + pw // 2, y + ph // 2), (max(1, pw // 2), max(1, ph // 2)), 0, 0, 360, 255, -1)
            else:
                cv2.rectangle(mask, (x, y), (x + pw, y + ph), 255, -1)
            patch = self._patch(rng, h, w)
            canvas[mask > 0] = patch[mask > 0]
            covered |= mask
        if rng.random() < lay.tag_p:
            for _ in range(int(rng.integers(1, 8))):  # price tags and stickers hanging over the products
                tw, th = int(w * rng.uniform(0.02, 0.08)), int(h * rng.uniform(0.02, 0.06))
                x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
                cv2.rectangle(canvas, (x, y), (x + tw, y + th), fx._colour(rng, 150, 256), -1)
                cv2.rectangle(covered, (x, y), (x + tw, y + th), 255, -1)
        fx.draw_distractors(canvas, rng)

    def _patch(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        if self.photos and rng.random() < 0.7:
            photo = self.photos[int(rng.integers(len(self.photos)))]
            return cv2.resize(photo, (w, h), interpolation=cv2.INTER_LINEAR)
        patch = np.empty((h, w, 3), np.uint8)
        patch[:] = fx._colour(rng)
        return patch

    def _colour(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        lay = self.layout
        if rng.random() < lay.grayscale_p:
            return np.asarray(cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR))
        if rng.random() < 0.5:
            cast = rng.uniform(1 - lay.cast, 1 + lay.cast, 3).astype(np.float32)
            return np.asarray(np.clip(image.astype(np.float32) * cast, 0, 255), dtype=np.uint8)
        return image


def _rotate(
    image: np.ndarray, boxes: np.ndarray, zones: list[np.ndarray], degrees: float
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Rotate the frame about its centre; boxes become the axis-aligned hull of their turned corners."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    out = cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)
    if len(boxes):
        corners = boxes[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 4, 2)
        turned = corners @ matrix[:, :2].T.astype(np.float32) + matrix[:, 2].astype(np.float32)
        # The hull of a turned box is larger than the product: shrink it back by the turn's share.
        hull = np.concatenate([turned.min(axis=1), turned.max(axis=1)], axis=1)
        shrink = abs(math.sin(math.radians(degrees))) * 0.5
        size = hull[:, 2:] - hull[:, :2]
        boxes = np.concatenate([hull[:, :2] + size * shrink / 2, hull[:, 2:] - size * shrink / 2], axis=1)
    zones = [z @ matrix[:, :2].T.astype(np.float32) + matrix[:, 2].astype(np.float32) for z in zones]
    return out, boxes.astype(np.float32), zones
