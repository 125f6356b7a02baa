"""Fine-tunes the COCO YOLOX-Nano into a class-agnostic shelf detector on composed shelves (npz shards).

    python models/build/shelf/finetune.py --pretrained models/pretrained/coco-yolox-nano/yolox_nano.onnx \
        --data /tmp/shelf-yolox/train --out /tmp/shelf-yolox/run --minutes 60 --batch 8 --threads 1

Loss as for the first shelf model (train.py): task-aligned assignment over the grid-cell centres, BCE on the
aligned objectness targets, GIoU + L1 on the boxes. The backbone starts from COCO (118k real scenes), so it has
seen keyboards, monitors and carts; the composed negatives (texture photos, clutter, tags, arms) teach it that
they are not products. Time-boxed: the cosine schedule follows wall time and a checkpoint is saved every 50 steps.
Multi-scale: each step draws its input size from --sizes (the shards are 416; smaller steps cost less CPU, so a
time box sees more of them; the export stays at 416).
A second stage continues from a checkpoint (--init, a low --lr) with a set share of each batch drawn from the
product-free frames (--empty-share), to weigh the negatives more without composing a new set.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train import assign, batch_targets, giou_loss, load_shards
from yolox_net import ShelfYolox


def loss_fn(
    model: ShelfYolox, images: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    reg, logits = model.raw(images)
    boxes = model.boxes(reg)
    target_scores, target_boxes, positive = assign(
        boxes.detach(), logits.detach().sigmoid(), model.anchors(), gt, valid
    )
    norm = target_scores.sum().clamp(min=1.0)
    cls = F.binary_cross_entropy_with_logits(logits, target_scores, reduction="sum") / norm
    if positive.any():
        weight = target_scores[positive]
        box = (giou_loss(boxes[positive], target_boxes[positive]) * weight).sum() / norm
        l1 = (F.l1_loss(boxes[positive], target_boxes[positive], reduction="none").mean(-1) * weight).sum() / norm / 16
    else:
        box = l1 = boxes.sum() * 0
    total = cls + 2.5 * box + l1
    return total, {"cls": float(cls), "box": float(box), "l1": float(l1), "pos": float(positive.sum())}


def augment(
    images: np.ndarray, boxes: list[np.ndarray], rng: np.random.Generator, size: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Resize to `size`, flips, brightness/contrast and an occasional grayscale on top of the composers' variety;
    BGR 0..255 NCHW."""
    scale = size / images.shape[1]
    if size != images.shape[1]:
        images = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])
    out = images.astype(np.float32)
    moved = []
    for i in range(len(out)):
        b = boxes[i] * scale
        if rng.random() < 0.5:
            out[i] = out[i, :, ::-1]
            b[:, [0, 2]] = size - b[:, [2, 0]]
        if rng.random() < 0.1:
            out[i] = out[i].mean(axis=2, keepdims=True)
        out[i] = np.clip(out[i] * rng.uniform(0.75, 1.25) + rng.uniform(-15, 15), 0, 255)
        moved.append(b)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2)), moved


def pick_batch(boxes: list[np.ndarray], empty: np.ndarray, share: float, batch: int,
               rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Frame indices for one batch: uniform, or with `share` of the slots drawn from the product-free frames."""
    pick = rng.integers(0, len(boxes), batch)
    if share > 0 and len(empty):
        slots = rng.random(batch) < share
        pick[slots] = rng.choice(empty, int(slots.sum()))
    return pick


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pretrained", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--steps", type=int, default=100_000, help="cap; the time box usually ends the run first")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", type=int, nargs="+", default=[416], help="input sizes drawn per step (x32)")
    parser.add_argument("--init", type=Path, help="continue from this checkpoint (a state dict saved by this script)")
    parser.add_argument("--empty-share", type=float, default=0.0,
                        help="share of each batch drawn from the frames without products (0: uniform)")  # fmt: skip
    return parser.parse_args()


def main() -> int:
    args = arguments()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    while not list(args.data.glob("shard-*.npz")):
        time.sleep(5)  # the composer writes its first shard
    images, boxes = load_shards(args.data)
    print(f"{len(images)} training shelves", flush=True)
    model = ShelfYolox(args.pretrained, images.shape[1])
    if args.init is not None:
        model.load_state_dict(torch.load(args.init, map_location="cpu"))
        print(f"continuing from {args.init}", flush=True)
    model.train()
    empty = np.flatnonzero([len(b) == 0 for b in boxes])
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    start, warm, step = time.time(), 30, 0
    for step in range(args.steps):
        done = (time.time() - start) / (args.minutes * 60)
        if done >= 1.0:
            break
        for group in opt.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * done)))
        if step % 50 == 0 and step and len(list(args.data.glob("shard-*.npz"))) * 100 > len(images):
            images, boxes = load_shards(args.data)
            empty = np.flatnonzero([len(b) == 0 for b in boxes])
            print(f"reloaded: {len(images)} shelves, {len(empty)} without products", flush=True)
        pick = pick_batch(boxes, empty, args.empty_share, args.batch, rng)
        size = int(rng.choice(args.sizes))
        model.set_size(size)
        batch, batch_boxes = augment(images[pick], [boxes[i] for i in pick], rng, size)
        gt, valid = batch_targets(batch_boxes)
        loss, parts = loss_fn(model, torch.from_numpy(batch), gt, valid)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        if step % 10 == 0:
            print(
                f"step {step:5d} {time.time() - start:7.0f}s size {size} lr {opt.param_groups[0]['lr']:.5f} "
                + f"loss {float(loss):.3f} "
                + " ".join(f"{k} {v:.3f}" for k, v in parts.items()),
                flush=True,
            )
        if (step + 1) % 50 == 0:
            torch.save(model.state_dict(), args.out / "last.pt")
    model.set_size(images.shape[1])
    torch.save(model.state_dict(), args.out / "last.pt")
    print(f"finished after {step} steps, {time.time() - start:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
