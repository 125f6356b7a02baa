"""Composes synthetic retail shelves (frames, product boxes, slot zones) for training, benchmarks and demos.

No dense, annotated real shelf photo set can be reached by this project, so the shipped detector is
trained on shelves composed here from product photos of the Grocery Store Dataset (MIT, see
models/shelf-detector/MODEL_CARD.md). Without that data set a procedural product library keeps the
composer usable in tests. Pure numpy + OpenCV: no training framework is imported.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge_agent.errors import DataError
from edge_agent.tasks.shelf import compose_fx as fx

logger = logging.getLogger(__name__)

SPRITE_MAX = 160  # sprites are stored at most this tall or wide; shelves never need them larger


@dataclass
class Sprite:
    """A product photo (BGR) with its alpha mask (uint8 0..255), cropped to the product."""

    image: np.ndarray
    alpha: np.ndarray
    name: str


@dataclass
class ProductLibrary:
    """Product sprites and back-wall textures a shelf is composed from."""

    sprites: list[Sprite]
    textures: list[np.ndarray] = field(default_factory=list)

    @staticmethod
    def from_grocery_store(root: Path, split: str = "train", holdout_share: float = 0.2) -> ProductLibrary:
        """Sprites from the Grocery Store Dataset: iconic cut-outs plus label crops of the in-store photos.

        `split` "train" or "heldout" splits both kinds of images by a hash of their path, so a
        benchmark never sees a photo the detector was trained on.
        """
        if not (root / "train").is_dir() or not (root / "iconic-images-and-descriptions").is_dir():
            raise DataError(
                f"{root}: not the Grocery Store Dataset (expected train/ and iconic-images-and-descriptions/)"
            )
        iconic = sorted((root / "iconic-images-and-descriptions").rglob("*.jpg"))
        photos = sorted((root / "train").rglob("*.jpg"))
        sprites = [s for s in (_iconic_sprite(p) for p in iconic if _in_split(p, split, holdout_share)) if s]
        textures: list[np.ndarray] = []
        for path in photos:
            if not _in_split(path, split, holdout_share):
                continue
            image = cv2.imread(str(path))
            if image is None:
                continue
            image = _fit(image, SPRITE_MAX * 2)
            textures.append(image)
            sprites.append(_photo_sprite(image, path.stem))
        logger.info("grocery store library (%s): %d sprites, %d textures", split, len(sprites), len(textures))
        return ProductLibrary(sprites, textures)

    @staticmethod
    def procedural(seed: int = 0, count: int = 40) -> ProductLibrary:
        """Packages drawn from shapes and stripes: for tests and for machines without the data set."""
        rng = np.random.default_rng(seed)
        return ProductLibrary([fx.procedural_sprite(rng, i) for i in range(count)], [])


def _in_split(path: Path, split: str, holdout_share: float) -> bool:
    bucket = int(hashlib.sha256(path.name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return (bucket < holdout_share) == (split == "heldout")


def _fit(image: np.ndarray, longest: int) -> np.ndarray:
    scale = longest / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _iconic_sprite(path: Path, longest: int = SPRITE_MAX) -> Sprite | None:
    """Iconic images are products on white: flood-fill the white from the border to get the mask."""
    image = cv2.imread(str(path))
    if image is None:
        return None
    mask = np.zeros((image.shape[0] + 2, image.shape[1] + 2), np.uint8)
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (255 << 8)
    for seed in ((0, 0), (image.shape[1] - 1, 0), (0, image.shape[0] - 1), (image.shape[1] - 1, image.shape[0] - 1)):
        cv2.floodFill(image, mask, seed, (0, 0, 0), (12, 12, 12), (12, 12, 12), flags)
    alpha = 255 - mask[1:-1, 1:-1]
    alpha = cv2.morphologyEx(alpha, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    ys, xs = np.nonzero(alpha > 127)
    if len(xs) < 100:
        return None
    crop = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    return Sprite(_fit(image[crop], longest), _fit(alpha[crop], longest), path.stem)


def _photo_sprite(image: np.ndarray, name: str, longest: int = SPRITE_MAX) -> Sprite:
    """A package face cut from the middle of an in-store photo, where the product usually is."""
    h, w = image.shape[:2]
    cw, ch = int(w * 0.45), int(h * 0.6)
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    crop = _fit(image[y0 : y0 + ch, x0 : x0 + cw].copy(), longest)
    return Sprite(crop, fx.package_alpha(crop.shape[0], crop.shape[1]), name)


def whole_frame_zone(width: int, height: int) -> np.ndarray:
    """One zone polygon (4 x 2, frame pixels) over the whole frame."""
    return np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)


@dataclass
class Shelf:
    """One composed frame: BGR image, product boxes (n x 4 xyxy frame pixels) and slot zones."""

    image: np.ndarray
    boxes: np.ndarray
    zones: list[np.ndarray]  # slot polygons (4 x 2, frame pixels), row-major
    zone_rows: list[int]  # the shelf row of each zone
    box_zone: np.ndarray  # zone index of each box


@dataclass
class Placement:
    """One facing: its picture, top-left corner in the unwarped canvas and its slot zone."""

    face: fx.Face
    x: float
    y: float
    zone: int

    @property
    def box(self) -> list[float]:
        h, w = self.face[0].shape[:2]
        return [self.x, self.y, self.x + w, self.y + h]


@dataclass
class Scene:
    """A planned shelf before products are pasted: the same scene renders frames with stock coming and going."""

    background: np.ndarray
    placements: list[Placement]
    zones: list[np.ndarray]
    zone_rows: list[int]
    boards: list[tuple[int, int]] = field(default_factory=list)  # pixel rows of each shelf edge, drawn over products


@dataclass(frozen=True)
class Layout:
    """Ranges the composer draws shelves from; a benchmark uses its own seed and may use its own ranges."""

    width: tuple[int, int] = (560, 800)
    aspect: tuple[float, float] = (0.62, 0.8)
    rows: tuple[int, int] = (2, 5)
    fill: tuple[float, float] = (0.6, 0.92)  # product height / row height
    facings: tuple[int, int] = (1, 6)
    empty_slot_p: float = 0.12
    missing_facing_p: float = 0.06
    occluder_p: float = 0.35
    perspective: float = 0.06
    distractor_p: float = 0.5


class ShelfComposer:
    """Draws shelves: rows of slots, each slot a product repeated over a few facings, then camera effects."""

    def __init__(self, library: ProductLibrary, layout: Layout | None = None) -> None:
        if not library.sprites:
            raise DataError("product library is empty")
        self.library = library
        self.layout = layout or Layout()

    def compose(self, rng: np.random.Generator, products: bool = True) -> Shelf:
        """A random shelf: layout, products, an occluding arm and clutter at random, camera effects."""
        lay = self.layout
        scene = self.plan(rng, products)
        occluder = rng.random() < lay.occluder_p
        return self.render(scene, rng, occluder=occluder, distractors=None)

    def plan(self, rng: np.random.Generator, products: bool = True) -> Scene:
        """Wall, shelf boards and where every facing goes; nothing pasted yet."""
        lay = self.layout
        width = int(rng.integers(lay.width[0], lay.width[1] + 1))
        height = int(width * rng.uniform(*lay.aspect))
        canvas = fx.back_wall(rng, height, width, self.library.textures)
        rows = int(rng.integers(lay.rows[0], lay.rows[1] + 1))
        top = rng.uniform(0.0, 0.08) * height
        bottom = height - rng.uniform(0.0, 0.08) * height
        row_h = (bottom - top) / rows
        scene = Scene(canvas, [], [], [])
        board = fx.board_style(rng)
        for r in range(rows):
            floor = top + (r + 1) * row_h
            board_h = max(4.0, row_h * rng.uniform(0.07, 0.13))
            fx.draw_row_back(canvas, rng, int(floor - row_h), int(floor - board_h))
            if products:
                self._fill_row(scene, rng, r, (floor - row_h, floor - board_h))
            fx.draw_board(canvas, rng, int(floor - board_h), int(floor), board)
            scene.boards.append((max(0, int(floor - board_h)), int(floor) + 1))
        return scene

    def render(
        self,
        scene: Scene,
        rng: np.random.Generator,
        present: np.ndarray | None = None,
        occluder: bool = False,
        distractors: bool | None = False,
    ) -> Shelf:
        """Paste the facings marked present (all by default), add an arm / clutter, then the camera."""
        canvas = scene.background.copy()
        present = np.ones(len(scene.placements), bool) if present is None else present
        chosen = [p for p, keep in zip(scene.placements, present) if keep]
        for placement in chosen:
            fx.paste(canvas, placement.face, round(placement.x), round(placement.y))
        for y0, y1 in scene.boards:  # a facing may overhang the shelf edge by a rounding pixel: the edge wins
            canvas[y0:y1] = scene.background[y0:y1]
        box_arr = np.asarray([p.box for p in chosen], np.float32).reshape(-1, 4)
        visible = np.ones(len(box_arr), bool)
        if occluder:
            mask = fx.draw_occluder(canvas, rng)
            visible = fx.visible_share(mask, box_arr) >= 0.45
        if distractors or (distractors is None and rng.random() < self.layout.distractor_p):
            fx.draw_distractors(canvas, rng)
        image, box_arr, zone_list = fx.camera(canvas, rng, box_arr, scene.zones, self.layout.perspective)
        keep = visible & fx.inside_share(box_arr, image.shape, 0.6)
        box_arr = fx.clip_boxes(box_arr, image.shape)
        box_zone = np.asarray([p.zone for p in chosen], np.int64)
        return Shelf(image, box_arr[keep], zone_list, list(scene.zone_rows), box_zone[keep])

    def _fill_row(self, scene: Scene, rng: np.random.Generator, row: int, span: tuple[float, float]) -> None:
        lay = self.layout
        top, floor = span
        width = scene.background.shape[1]
        x = rng.uniform(0, 0.04) * width
        while x < width * 0.97:
            sprite = self.library.sprites[int(rng.integers(len(self.library.sprites)))]
            ph = (floor - top) * rng.uniform(*lay.fill)
            aspect = sprite.image.shape[1] / sprite.image.shape[0] * rng.uniform(0.85, 1.15)
            pw = float(np.clip(ph * aspect, 10, width * 0.3))
            gap = pw * rng.uniform(0.0, 0.08)
            count = int(rng.integers(lay.facings[0], lay.facings[1] + 1))
            count = max(1, min(count, int((width - x) // (pw + gap))))
            if (width - x) < pw:
                break
            zone = len(scene.zones)
            slot_w = count * (pw + gap)
            scene.zones.append(np.array([[x, top], [x + slot_w, top], [x + slot_w, floor], [x, floor]], np.float32))
            scene.zone_rows.append(row)
            if rng.random() >= lay.empty_slot_p:
                face = fx.prepare_face(sprite, round(pw), round(ph), rng)
                for k in range(count):
                    if rng.random() < lay.missing_facing_p:
                        continue
                    left = x + k * (pw + gap) + rng.uniform(-0.5, 0.5) * gap
                    y0 = floor - ph - rng.uniform(0, 0.03) * ph
                    scene.placements.append(Placement(face, left, y0, zone))
            x += slot_w + rng.uniform(0.01, 0.05) * width


def letterbox(image: np.ndarray, boxes: np.ndarray, size: int, pad: int = 114) -> tuple[np.ndarray, np.ndarray]:
    """Letterbox a frame to size x size the way ImagePreprocessor does, and move its boxes with it."""
    h, w = image.shape[:2]
    scale = min(size / w, size / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    px, py = (size - nw) // 2, (size - nh) // 2
    out = np.full((size, size, 3), pad, np.uint8)
    out[py : py + nh, px : px + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    moved = boxes * scale + np.array([px, py, px, py], np.float32)
    return out, moved.astype(np.float32)
