"""Composes the fine-tuning set of the YOLOX shelf detector: letterboxed 416x416 frames + boxes in npz shards.

    python models/build/shelf/make_hard_dataset.py --data /work/shared/data --out /tmp/shelf-yolox/train \
        --count 3000 --seed 1 --hard-share 0.75

Frames come from the hard composer (edge_agent/tasks/shelf/compose_hard.py: 3-60% product widths, drawn walls and
clutter, casts, rotation, occluders), from the plain composer the first shelf model was trained on, and a share with
no product at all (a drawn texture filling the frame, or a hard shelf left empty). --data is the folder holding
grocery-store/ (MIT). Walls and clutter come from edge_agent/tasks/shelf/compose_walls.py (drawn here, no photo):
the KolektorSDD / ELPV texture photos (CC BY-NC-SA 4.0) are never read, they stay unseen test material for
bench/shelf_accuracy.py --set empty.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from edge_agent.tasks.shelf.compose import Layout, ProductLibrary, ShelfComposer, letterbox  # noqa: E402
from edge_agent.tasks.shelf.compose_closeup import CloseupComposer, CloseupLayout, package_sprites  # noqa: E402
from edge_agent.tasks.shelf.compose_fx import camera  # noqa: E402
from edge_agent.tasks.shelf.compose_hard import HardShelfComposer  # noqa: E402
from edge_agent.tasks.shelf.compose_walls import procedural_texture, texture_bank  # noqa: E402

SIZE = 416
SHARD = 100


@dataclass(frozen=True)
class Mix:
    """Shares of the frames: no product at all, close-ups, then hard shelves among the rest (plain otherwise)."""

    empty: float
    closeup: float
    hard: float


@dataclass(frozen=True)
class Composers:
    hard: HardShelfComposer
    plain: ShelfComposer
    closeup: CloseupComposer | None


def composers(data: Path, split: str, seed: int, closeups: bool, slab: float = 0.0) -> Composers:
    library = ProductLibrary.from_grocery_store(data / "grocery-store", split=split)
    hard = HardShelfComposer(library, texture_bank(seed))
    front = package_sprites(data / "grocery-store", split) if closeups else None
    closeup = CloseupComposer(hard, front, CloseupLayout(slab_p=slab)) if front is not None else None
    return Composers(hard, ShelfComposer(library, Layout()), closeup)


def empty_frame(hard: HardShelfComposer, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A frame with no product: a drawn texture filling a camera-sized frame, or a hard shelf left empty."""
    if rng.random() < 0.4:
        shelf = hard.compose(rng, products=False)
        return shelf.image, shelf.boxes
    width = int(rng.integers(480, 1281))
    image = procedural_texture(rng, int(width * rng.uniform(0.5, 1.0)), width)
    image, boxes, _ = camera(image, rng, np.zeros((0, 4), np.float32), [], 0.05)
    return image, boxes


def frame(c: Composers, rng: np.random.Generator, mix: Mix) -> tuple[np.ndarray, np.ndarray]:
    draw = rng.random()
    if draw < mix.empty:
        return empty_frame(c.hard, rng)
    closeup = mix.closeup if c.closeup is not None else 0.0
    if c.closeup is not None and draw < mix.empty + closeup:
        shelf = c.closeup.compose(rng)
    else:  # where the rest of the draw falls (one draw per frame, so seeds give the frames of earlier builds)
        rest = (draw - mix.empty - closeup) / (1 - mix.empty - closeup)
        shelf = c.hard.compose(rng) if rest < mix.hard else c.plain.compose(rng)
    return shelf.image, shelf.boxes


def write_shard(path: Path, c: Composers, seed: int, mix: Mix) -> None:
    rng = np.random.default_rng(seed)
    images = np.empty((SHARD, SIZE, SIZE, 3), np.uint8)
    boxes, offsets = [], [0]
    for i in range(SHARD):
        image, truth = frame(c, rng, mix)
        images[i], moved = letterbox(image, truth, SIZE)
        boxes.append(moved)
        offsets.append(offsets[-1] + len(moved))
    flat = np.concatenate(boxes).astype(np.float32).reshape(-1, 4)
    np.savez(path.with_suffix(".tmp.npz"), images=images, boxes=flat, offsets=np.asarray(offsets))
    path.with_suffix(".tmp.npz").rename(path)  # the trainer reloads shards as they appear: never a half file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="folder with grocery-store/")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--split", choices=["train", "heldout"], default="train")
    parser.add_argument("--hard-share", type=float, default=0.75)
    parser.add_argument("--empty-share", type=float, default=0.1, help="frames with no product at all")
    parser.add_argument("--closeup-share", type=float, default=0.0, help="close-ups: 1-3 large products in front")
    parser.add_argument("--slab-share", type=float, default=0.0, help="of the close-ups' large things: plain slabs")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    c = composers(args.data, args.split, args.seed, args.closeup_share > 0, args.slab_share)
    mix = Mix(args.empty_share, args.closeup_share, args.hard_share)
    for k in range((args.count + SHARD - 1) // SHARD):
        path = args.out / f"shard-{args.seed * 1000 + k:06d}.npz"
        write_shard(path, c, args.seed * 1000 + k, mix)
        print(f"{time.time() - start:7.1f}s wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
