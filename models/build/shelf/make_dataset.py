"""Composes a shelf training or validation set (letterboxed 320x320 frames + boxes) into npz shards.

    python models/build/shelf/make_dataset.py --data /work/shared/data/grocery-store \
        --out /tmp/shelf-data/train --count 4000 --seed 1 --split train --workers 2
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from edge_agent.tasks.shelf.compose import Layout, ProductLibrary, ShelfComposer, letterbox  # noqa: E402

SIZE = 320
SHARD = 250


_COMPOSER: list[ShelfComposer] = []


def _init(data: str, split: str) -> None:
    cv2.setNumThreads(1)
    _COMPOSER.append(ShelfComposer(ProductLibrary.from_grocery_store(Path(data), split=split), Layout()))


def _shard(args: tuple[str, int, int]) -> str:
    out, seed, count = args
    composer = _COMPOSER[0]
    rng = np.random.default_rng(seed)
    images = np.empty((count, SIZE, SIZE, 3), np.uint8)
    boxes, offsets = [], [0]
    for i in range(count):
        shelf = composer.compose(rng, products=rng.random() > 0.03)
        images[i], moved = letterbox(shelf.image, shelf.boxes, SIZE)
        boxes.append(moved)
        offsets.append(offsets[-1] + len(moved))
    path = Path(out) / f"shard-{seed:06d}.npz"
    np.savez(path, images=images, boxes=np.concatenate(boxes).astype(np.float32), offsets=np.asarray(offsets))
    return str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="Grocery Store Dataset folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--split", choices=["train", "heldout"], default="train")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    shards = (args.count + SHARD - 1) // SHARD
    jobs = [(str(args.out), args.seed * 1000 + k, min(SHARD, args.count - k * SHARD)) for k in range(shards)]
    start = time.time()
    with mp.Pool(args.workers, initializer=_init, initargs=(str(args.data), args.split)) as pool:
        for path in pool.imap_unordered(_shard, jobs):
            print(f"{time.time() - start:7.1f}s wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
