"""Shelf counting and detection accuracy of every variant of a shelf detector on held-out composed shelves.

    python -m bench.shelf_accuracy --data /work/shared/data/grocery-store --model models/shelf-detector

The held-out shelves are composed with their own seed, their own layout ranges and only the product
photos the training split never saw (a hash split of the Grocery Store Dataset). Zones are the
composed product slots; the true count of a zone is the number of true boxes whose centre lies in
it, the same rule the task applies to detections. Reports per variant: count MAE per zone,
exact-count accuracy, precision / recall at the manifest's score threshold (IoU 0.5) and mAP@0.5,
plus the int8/fp32 mAP ratio. Writes JSON and Markdown to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_agent.config import LiteRTConfig, OnnxRuntimeConfig
from edge_agent.runtime.manifest import load_manifest, write_manifest
from edge_agent.runtime.registry import load_model
from edge_agent.tasks.detection import DecodeSpec, Detections, box_iou, get_decoder, input_multiple
from edge_agent.tasks.preprocess import ImagePreprocessor
from edge_agent.tasks.shelf.compose import Layout, ProductLibrary, Shelf, ShelfComposer, whole_frame_zone
from edge_agent.tasks.shelf.compose_closeup import CloseupComposer, CloseupLayout, package_sprites
from edge_agent.tasks.shelf.compose_hard import HardShelfComposer, texture_photos
from edge_agent.tasks.shelf.logic import points_in_polygon
from edge_agent.tasks.shelf.task import to_frame

REPO = Path(__file__).resolve().parents[1]
HELDOUT_SEED = 20_261_122
# Wider frames and another row range than training (560-800 px, 2-5 rows): the layouts differ too.
HELDOUT_LAYOUT = Layout(width=(640, 960), rows=(2, 6), occluder_p=0.25)


@dataclass
class Frame:
    shelf: Shelf
    true_counts: np.ndarray
    photo: bool = False  # a real product-free photo (the empty set's first half), not a composed frame


def held_out(data: Path | None, count: int, kind: str = "plain", textures: list[Path] | None = None) -> list[Frame]:
    """Held-out frames of one set: plain (the first composer), hard (compose_hard), closeup (compose_closeup: one
    to three large products in front of a wall with clutter, one zone over the frame), empty (no products at
    all: held-out texture photos, and hard-composer walls with clutter but no products)."""
    library = ProductLibrary.from_grocery_store(data, split="heldout") if data else ProductLibrary.procedural(seed=7)
    rng = np.random.default_rng(HELDOUT_SEED)
    if kind == "plain":
        composer = ShelfComposer(library, HELDOUT_LAYOUT)
        shelves = [composer.compose(rng) for _ in range(count)]
    else:
        photos = texture_photos(textures, "heldout") if textures else []
        hard = HardShelfComposer(library, photos)
        if kind == "hard":
            shelves = [hard.compose(rng) for _ in range(count)]
        elif kind == "closeup":
            # As a photo of one product: 1-3 large ones in front of a wall with clutter, nothing stocked behind.
            front = package_sprites(data, "heldout") if data else library
            closeup = CloseupComposer(hard, front, CloseupLayout(shelf_behind_p=0.0))
            shelves = [closeup.compose(rng) for _ in range(count)]
        else:
            shelves = [_photo_frame(p, rng) for p in photos[: count // 2]]
            shelves += [hard.compose(rng, products=False) for _ in range(count - len(shelves))]
    photos_used = min(len(photos), count // 2) if kind == "empty" else 0
    return [Frame(s, zone_counts(s.boxes, s.zones), i < photos_used) for i, s in enumerate(shelves)]


def _photo_frame(photo: np.ndarray, rng: np.random.Generator) -> Shelf:
    """A real photo without products at a camera-like size, one zone over the whole frame."""
    width = int(rng.integers(640, 1281))
    image = cv2.resize(photo, (width, int(width * photo.shape[0] / photo.shape[1])))
    zone = whole_frame_zone(image.shape[1], image.shape[0])
    return Shelf(image, np.zeros((0, 4), np.float32), [zone], [0], np.zeros(0, np.int64))


def zone_counts(boxes: np.ndarray, zones: list[np.ndarray]) -> np.ndarray:
    centres = (
        np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1) if len(boxes) else boxes[:, :2]
    )
    return np.array([int(points_in_polygon(centres, z).sum()) for z in zones], dtype=np.int64)


def average_precision(matches: list[tuple[float, bool]], positives: int) -> float:
    """All-point interpolated AP (VOC 2010+ / COCO style at one IoU)."""
    if positives == 0:
        return float("nan")
    if not matches:
        return 0.0
    ranked = sorted(matches, key=lambda m: -m[0])
    tp = np.cumsum([m[1] for m in ranked])
    fp = np.cumsum([not m[1] for m in ranked])
    recall = np.concatenate([[0.0], tp / positives])
    precision = np.concatenate([[1.0], tp / np.maximum(tp + fp, 1)])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum((recall[1:] - recall[:-1]) * precision[1:]))


def match(pred: Detections, truth: np.ndarray, iou: float = 0.5) -> list[tuple[float, bool]]:
    """Greedy matching by score: each true box matches at most one detection."""
    if len(pred) == 0:
        return []
    if len(truth) == 0:
        return [(float(s), False) for s in pred.scores]
    overlaps = box_iou(pred.boxes, truth)
    taken = np.zeros(len(truth), dtype=bool)
    out = []
    for i in np.argsort(-pred.scores):
        candidates = np.where(~taken & (overlaps[i] >= iou), overlaps[i], -1)
        j = int(candidates.argmax())
        hit = bool(candidates[j] >= iou)
        taken[j] |= hit
        out.append((float(pred.scores[i]), hit))
    return out


def evaluate(
    model_dir: Path, variant: str, frames: list[Frame], class_agnostic: bool = False, square: bool = False
) -> dict[str, Any]:
    manifest = load_manifest(model_dir)
    fmt = manifest.files[variant].format
    runtime = LiteRTConfig(kind="litert", threads=1) if fmt == "tflite" else OnnxRuntimeConfig(intra_op_threads=1)
    model = load_model(model_dir, variant, runtime)
    overrides = {"class_agnostic": True} if class_agnostic else {}
    operating = DecodeSpec.from_manifest(manifest, **overrides)
    low = operating.with_threshold(0.01)  # the whole precision/recall curve for mAP
    decoder = get_decoder(manifest.decoder)
    # As the shelf task feeds it: a wide frame's bars cut to the largest stride, where the file takes any size.
    rows = None if square else input_multiple(manifest, model.runtime, operating)
    pre = ImagePreprocessor(manifest.inputs[0], letterbox=True, row_multiple=rows)
    matches: list[tuple[float, bool]] = []
    errors, predicted, tp, fp, positives, extra = [], [], 0, 0, 0, 0
    on_photos = 0
    for frame in frames:
        image = frame.shelf.image
        buffer, box = pre(image)
        raw = decoder(model.runtime.run([buffer]), low.for_input(pre.height, pre.width))[0]
        dets = to_frame(raw, box, image.shape[1], image.shape[0])
        truth = frame.shelf.boxes
        matches += match(dets, truth)
        positives += len(truth)
        keep = dets.scores >= operating.score_threshold
        kept = Detections(dets.boxes[keep], dets.scores[keep], dets.classes[keep])
        hits = sum(h for _, h in match(kept, truth))
        tp, fp = tp + hits, fp + len(kept) - hits
        predicted.append(zone_counts(kept.boxes, frame.shelf.zones))
        errors.append(predicted[-1] - frame.true_counts)
        extra += len(kept)
        on_photos += len(kept) if frame.photo else 0
    model.runtime.close()
    err = np.concatenate(errors)
    said_out, truly_out = np.concatenate(predicted) == 0, np.concatenate([f.true_counts for f in frames]) == 0
    photos = sum(f.photo for f in frames)
    split = {"boxes_per_photo": round(on_photos / photos, 4), "boxes_per_composed": round(
        (extra - on_photos) / max(len(frames) - photos, 1), 4)} if photos else {}  # fmt: skip
    return {
        **split,
        "variant": variant,
        "zones": len(err),
        "oos_precision": round(float((said_out & truly_out).sum() / max(said_out.sum(), 1)), 4),
        "oos_recall": round(float((said_out & truly_out).sum() / max(truly_out.sum(), 1)), 4),
        "boxes_per_frame": round(extra / max(len(frames), 1), 4),
        "count_mae": round(float(np.abs(err).mean()), 4),
        "count_exact": round(float((err == 0).mean()), 4),
        "count_bias": round(float(err.mean()), 4),
        "precision": round(tp / max(tp + fp, 1), 4),
        "recall": round(tp / max(positives, 1), 4),
        "map50": round(average_precision(matches, positives), 4),
        "score_threshold": operating.score_threshold,
    }


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"Held-out {meta['set']} frames: {meta['shelves']} frames, {meta['boxes']} products, {results[0]['zones']} "
        f"slot zones (seed {meta['seed']}, {meta['products']}).",
        "",
        "| variant | count MAE / zone | exact count | precision | recall | mAP@0.5 | mAP vs fp32 | OOS precision "
        "| OOS recall | boxes / frame |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['variant']} | {r['count_mae']:.3f} | {r['count_exact']:.1%} | {r['precision']:.3f} | "
            f"{r['recall']:.3f} | {r['map50']:.3f} | {r.get('map_vs_fp32', 1.0):.1%} | {r['oos_precision']:.3f} | "
            f"{r['oos_recall']:.3f} | {r['boxes_per_frame']:.2f} |"
        )
    lines += [
        f"\n{r['variant']}: {r['boxes_per_photo']:.2f} boxes per real photo, {r['boxes_per_composed']:.2f} per "
        "composed frame"
        for r in results
        if "boxes_per_photo" in r
    ]
    return "\n".join(lines) + "\n"


RECORDED = ("count_mae", "count_exact", "precision", "recall", "map50", "oos_precision", "oos_recall")
EMPTY_RECORDED = ("boxes_per_frame", "boxes_per_photo", "boxes_per_composed")


def record(model_dir: Path, results: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """Store one set's measured figures in manifest.yaml (published on the retained model topic), beside the
    figures of the other sets already there."""
    manifest = load_manifest(model_dir)
    metrics: dict[str, Any] = dict(manifest.metrics)
    metrics["benchmark"] = (
        f"python -m bench.shelf_accuracy --set plain|hard|empty|closeup --shelves {meta['shelves']} (held-out "
        "composed shelves and close-ups; empty: held-out KolektorSDD / ELPV texture photos, never trained on, "
        "and composed frames without products)"
    )
    keys = EMPTY_RECORDED if meta["set"] == "empty" else (*RECORDED, "boxes_per_frame")
    for r in results:
        per_set = dict(metrics.get(r["variant"], {}))
        per_set[meta["set"]] = {k: r[k] for k in keys if k in r}
        metrics[r["variant"]] = per_set
    write_manifest(model_dir, manifest.model_copy(update={"metrics": metrics}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", type=Path, help="Grocery Store Dataset folder (held-out photos); procedural if omitted"
    )
    parser.add_argument("--model", type=Path, default=REPO / "models" / "shelf-detector")
    parser.add_argument("--shelves", type=int, default=200)
    parser.add_argument("--variants", nargs="*", help="manifest variants (default: all)")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench")
    parser.add_argument("--record", action="store_true", help="write the figures into the manifest's metrics")
    parser.add_argument(
        "--set", choices=["plain", "hard", "empty", "closeup"], default="plain", help="which held-out frames"
    )
    parser.add_argument("--textures", type=Path, nargs="*", help="texture photo folders (kolektorsdd, elpv images)")
    parser.add_argument("--class-agnostic", action="store_true", help="one NMS over all classes (a COCO detector)")
    square = "pad every frame to the manifest's whole input size, as files of one fixed size need"
    parser.add_argument("--square", action="store_true", help=square)
    args = parser.parse_args(argv)
    if args.data is not None and not args.data.is_dir():
        print(f"error: --data {args.data} is not a folder", file=sys.stderr)
        return 2
    started = time.time()
    frames = held_out(args.data, args.shelves, args.set, args.textures)
    variants = args.variants or sorted(load_manifest(args.model).files)
    results = [evaluate(args.model, v, frames, args.class_agnostic, args.square) for v in variants]
    fp32 = next((r for r in results if r["variant"].endswith("fp32")), None)
    for r in results:
        if fp32 and fp32["map50"] > 0:
            r["map_vs_fp32"] = round(r["map50"] / fp32["map50"], 4)
    meta = {
        "set": args.set,
        "shelves": len(frames),
        "boxes": int(sum(len(f.shelf.boxes) for f in frames)),
        "seed": HELDOUT_SEED,
        "products": "Grocery Store Dataset held-out photos" if args.data else "procedural products",
        "seconds": round(time.time() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "shelf_accuracy" if args.set == "plain" else f"shelf_accuracy_{args.set}"
    (args.out / f"{stem}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    table = markdown(results, meta)
    (args.out / f"{stem}.md").write_text(table)
    if args.record:
        record(args.model, results, meta)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
