"""Trains the shelf detector on composed shelves (npz shards from make_dataset.py).

    python models/build/shelf/train.py --data /tmp/shelf-data/train --out /tmp/shelf-data/run \
        --steps 3000 --batch 16 --threads 2

Loss: task-aligned assignment (YOLOv8's TAL: score^0.5 * IoU^6, top-10 anchor points inside each
box), BCE on the aligned score targets and GIoU on the boxes. Saves checkpoints as it goes so that
a time-boxed run can be stopped and exported at any point.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model import NECK, SIZE, WIDTHS, ShelfNet

TOPK = 10
ALPHA, BETA = 0.5, 6.0


def load_shards(folder: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    images, boxes = [], []
    for path in sorted(folder.glob("shard-*.npz")):
        with np.load(path) as shard:
            images.append(shard["images"])
            offsets = shard["offsets"]
            flat = shard["boxes"]
            boxes += [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
    return np.concatenate(images), boxes


def batch_targets(boxes: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """GT boxes padded to the batch's largest count, with a validity mask."""
    m = max([1, *(len(b) for b in boxes)])
    gt = torch.zeros(len(boxes), m, 4)
    valid = torch.zeros(len(boxes), m, dtype=torch.bool)
    for i, b in enumerate(boxes):
        if len(b):
            gt[i, : len(b)] = torch.from_numpy(b)
            valid[i, : len(b)] = True
    return gt, valid


def pair_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of broadcastable xyxy box tensors (..., 4)."""
    tl = torch.maximum(a[..., :2], b[..., :2])
    br = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (br - tl).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a + area_b - inter + 1e-7)


def giou_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    tl = torch.maximum(a[..., :2], b[..., :2])
    br = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (br - tl).clamp(min=0).prod(-1)
    union = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1) + (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1) - inter
    iou = inter / (union + 1e-7)
    hull = (torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])).clamp(min=0).prod(-1)
    return 1 - iou + (hull - union) / (hull + 1e-7)


@torch.no_grad()
def assign(
    pred_boxes: torch.Tensor, scores: torch.Tensor, anchors: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Task-aligned assignment. Returns target scores (B, N), target boxes (B, N, 4), positive mask (B, N)."""
    b, n = scores.shape
    inside = (anchors[None, None, :, 0] > gt[..., None, 0]) & (anchors[None, None, :, 0] < gt[..., None, 2])
    inside &= (anchors[None, None, :, 1] > gt[..., None, 1]) & (anchors[None, None, :, 1] < gt[..., None, 3])
    inside &= valid[..., None]
    iou = pair_iou(gt[:, :, None, :], pred_boxes[:, None, :, :]).clamp(min=0)  # (B, M, N)
    align = scores[:, None, :].pow(ALPHA) * iou.pow(BETA) * inside
    top = align.topk(TOPK, dim=2).indices
    chosen = torch.zeros_like(inside)
    chosen.scatter_(2, top, True)
    chosen &= inside & (align > 0)
    # An anchor point claimed by several boxes keeps the one it overlaps most.
    multi = chosen.sum(1) > 1
    if multi.any():
        best = (iou * chosen).argmax(1)
        one_hot = F.one_hot(best, gt.shape[1]).permute(0, 2, 1).bool()
        chosen = torch.where(multi[:, None, :], one_hot & chosen, chosen)
    positive = chosen.any(1)
    owner = chosen.float().argmax(1)  # (B, N)
    target_boxes = torch.gather(gt, 1, owner[..., None].expand(b, n, 4))
    align = align * chosen
    norm = align / (align.amax(2, keepdim=True) + 1e-9) * (iou * chosen).amax(2, keepdim=True)
    target_scores = norm.amax(1) * positive
    return target_scores, target_boxes, positive


def loss_fn(
    model: ShelfNet, images: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    raw = model.raw(images)
    logits = raw[..., 4]
    boxes = model.boxes(raw)
    target_scores, target_boxes, positive = assign(boxes.detach(), logits.detach().sigmoid(), model.anchors, gt, valid)
    norm = target_scores.sum().clamp(min=1.0)
    cls = F.binary_cross_entropy_with_logits(logits, target_scores, reduction="sum") / norm
    if positive.any():
        weight = target_scores[positive]
        box = (giou_loss(boxes[positive], target_boxes[positive]) * weight).sum() / norm
        l1 = (F.l1_loss(boxes[positive], target_boxes[positive], reduction="none").mean(-1) * weight).sum() / norm / 16
    else:
        box = l1 = boxes.sum() * 0
    total = cls + 2.5 * box + l1
    return total, {
        "cls": float(cls.detach()),
        "box": float(box.detach()),
        "l1": float(l1.detach()),
        "pos": float(positive.sum()),
    }


def augment(
    images: np.ndarray, boxes: list[np.ndarray], rng: np.random.Generator
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Horizontal flips and brightness/contrast jitter on top of the composer's own variety."""
    out = images.astype(np.float32) / 255
    moved = []
    for i in range(len(out)):
        b = boxes[i].copy()
        if rng.random() < 0.5:
            out[i] = out[i, :, ::-1]
            b[:, [0, 2]] = SIZE - b[:, [2, 0]]
        out[i] = np.clip(out[i] * rng.uniform(0.8, 1.2) + rng.uniform(-0.06, 0.06), 0, 1)
        moved.append(b)
    return out[..., ::-1].copy(), moved  # BGR shards -> RGB network input


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", type=Path)
    parser.add_argument(
        "--minutes", type=float, help="time-boxed run: the schedule follows wall time and stops there (steps is a cap)"
    )
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    images, boxes = load_shards(args.data)
    print(f"{len(images)} training shelves, {sum(len(b) for b in boxes)} boxes", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    model = ShelfNet(WIDTHS, NECK).to(memory_format=torch.channels_last)
    if args.resume:
        model.load_state_dict(torch.load(args.resume, weights_only=True))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    warm = min(100, args.steps // 10)
    start = time.time()

    def progress(step: int) -> float:
        if args.minutes:
            return min(1.0, (time.time() - start) / (args.minutes * 60))
        return step / args.steps

    for step in range(args.steps):
        done = progress(step)
        if done >= 1.0:
            break
        for group in opt.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / warm) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * done)))
        if step % 200 == 0 and step and len(list(args.data.glob("shard-*.npz"))) * 250 > len(images):
            images, boxes = load_shards(args.data)  # shards still being composed in the background
            print(f"reloaded: {len(images)} shelves", flush=True)
        pick = rng.integers(0, len(images), args.batch)
        batch, batch_boxes = augment(images[pick], [boxes[i] for i in pick], rng)
        gt, valid = batch_targets(batch_boxes)
        loss, parts = loss_fn(model, torch.from_numpy(batch), gt, valid)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        if step % 25 == 0 or step == args.steps - 1:
            print(
                f"step {step:5d} {time.time() - start:7.0f}s lr {opt.param_groups[0]['lr']:.5f} loss {float(loss):.3f} "
                + " ".join(f"{k} {v:.3f}" for k, v in parts.items()),
                flush=True,
            )
        if (step + 1) % 100 == 0:
            torch.save(model.state_dict(), args.out / "last.pt")
    torch.save(model.state_dict(), args.out / "last.pt")
    print(f"finished after {step} steps, {time.time() - start:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
