"""Composes the fine-tuning set of the YOLOX shelf detector: letterboxed 416x416 frames + boxes in npz shards.

    python models/build/shelf/make_hard_dataset.py --data /work/shared/data --out /tmp/shelf-yolox/train \
        --count 3000 --seed 1 --hard-share 0.75

Frames come from the hard composer (edge_agent/tasks/shelf/compose_hard.py: 3-60% product widths, real texture
photos as walls and clutter, casts, rotation, occluders) and, for the rest, from the plain composer the first shelf
model was trained on. --data is the folder holding grocery-store/, kolektorsdd/ and elpv-mono/. The texture
photos are CC BY-NC-SA 4.0: --no-textures composes without them (see the model card's licence note).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from edge_agent.tasks.shelf.compose import Layout, ProductLibrary, ShelfComposer, letterbox  # noqa: E402
from edge_agent.tasks.shelf.compose_hard import HardShelfComposer, texture_photos  # noqa: E402

SIZE = 416
SHARD = 100


def texture_roots(data: Path) -> list[Path]:
    return [data / "kolektorsdd" / "images", data / "elpv-mono" / "images"]


def composers(data: Path, split: str, textures: bool = True) -> tuple[HardShelfComposer, ShelfComposer]:
    library = ProductLibrary.from_grocery_store(data / "grocery-store", split=split)
    photos = texture_photos(texture_roots(data), split) if textures else []
    return HardShelfComposer(library, photos), ShelfComposer(library, Layout())


def write_shard(path: Path, hard: HardShelfComposer, plain: ShelfComposer, seed: int, share: float) -> None:
    rng = np.random.default_rng(seed)
    images = np.empty((SHARD, SIZE, SIZE, 3), np.uint8)
    boxes, offsets = [], [0]
    for i in range(SHARD):
        shelf = hard.compose(rng) if rng.random() < share else plain.compose(rng, products=rng.random() > 0.03)
        images[i], moved = letterbox(shelf.image, shelf.boxes, SIZE)
        boxes.append(moved)
        offsets.append(offsets[-1] + len(moved))
    flat = np.concatenate(boxes).astype(np.float32).reshape(-1, 4)
    np.savez(path.with_suffix(".tmp.npz"), images=images, boxes=flat, offsets=np.asarray(offsets))
    path.with_suffix(".tmp.npz").rename(path)  # the trainer reloads shards as they appear: never a half file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="folder with grocery-store/, kolektorsdd/, elpv-mono/")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--split", choices=["train", "heldout"], default="train")
    parser.add_argument("--hard-share", type=float, default=0.75)
    parser.add_argument(
        "--no-textures",
        action="store_true",
        help="no KolektorSDD / ELPV photos (both CC BY-NC-SA 4.0): walls and clutter are drawn instead",
    )
    args = parser.parse_args()
    cv2.setNumThreads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    hard, plain = composers(args.data, args.split, not args.no_textures)
    for k in range((args.count + SHARD - 1) // SHARD):
        path = args.out / f"shard-{args.seed * 1000 + k:06d}.npz"
        write_shard(path, hard, plain, args.seed * 1000 + k, args.hard_share)
        print(f"{time.time() - start:7.1f}s wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
