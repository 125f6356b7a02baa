"""Chooses the shelf detector's score and nested-box thresholds on composed data only, and shows what they do on
held-out sets.

    python -m bench.shelf_threshold --data /work/shared/data/grocery-store --model models/shelf-detector \
        --textures /work/shared/data/kolektorsdd/images /work/shared/data/elpv-mono/images

The choice is made on a validation set of its own seed: hard-composer shelves with held-out products on drawn
walls and clutter (compose_walls, the kind the training saw, never a photo), half as many close-ups of one to
three large products (compose_closeup, one zone each; since 2.5.0), plus as many product-free frames as hard
shelves (hard shelves left empty and drawn textures filling the frame, one zone over the whole frame). The
pair kept (score threshold, and the share of a box inside a better-scoring box above which NMS drops it, or none;
since 2.5.1) is the one with the lowest count MAE over all zones of that set, so a false box on clutter costs as
much as a missed product and a package counted twice as much as one missed. The held-out benchmark sets
(bench.shelf_accuracy's hard set and its real product-free photos) are then only reported at each pair; they play
no part in the choice.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.shelf_accuracy import REPO, Frame, held_out, match, zone_counts
from edge_agent.config import OnnxRuntimeConfig
from edge_agent.runtime.manifest import load_manifest
from edge_agent.runtime.registry import load_model
from edge_agent.tasks.detection import DecodeSpec, Detections, get_decoder
from edge_agent.tasks.preprocess import ImagePreprocessor, Letterbox
from edge_agent.tasks.shelf.compose import ProductLibrary, Shelf, whole_frame_zone
from edge_agent.tasks.shelf.compose_closeup import CloseupComposer, CloseupLayout, package_sprites
from edge_agent.tasks.shelf.compose_fx import camera
from edge_agent.tasks.shelf.compose_hard import HardShelfComposer
from edge_agent.tasks.shelf.compose_walls import procedural_texture, texture_bank
from edge_agent.tasks.shelf.task import to_frame

VALIDATION_SEED = 20_261_202
THRESHOLDS = [round(t, 2) for t in np.arange(0.25, 0.71, 0.05)]
NESTED: list[float | None] = [None, 0.5, 0.6, 0.7, 0.8]  # share of a box inside a better one that drops it


@dataclass(frozen=True)
class Raw:
    outputs: list[np.ndarray]
    box: Letterbox
    width: int
    height: int


def _whole_frame(image: np.ndarray) -> Shelf:
    zone = whole_frame_zone(image.shape[1], image.shape[0])
    return Shelf(image, np.zeros((0, 4), np.float32), [zone], [0], np.zeros(0, np.int64))


def validation(data: Path, count: int) -> list[Frame]:
    """`count` hard shelves with products, count / 2 close-ups of one to three products (nothing stocked behind,
    one zone), count / 2 empty hard shelves, count / 2 drawn texture frames."""
    rng = np.random.default_rng(VALIDATION_SEED)
    hard = HardShelfComposer(ProductLibrary.from_grocery_store(data, split="heldout"), texture_bank(VALIDATION_SEED))
    shelves = [hard.compose(rng) for _ in range(count)]
    closeup = CloseupComposer(hard, package_sprites(data, "heldout"), CloseupLayout(shelf_behind_p=0.0))
    shelves += [closeup.compose(rng) for _ in range(count // 2)]
    shelves += [hard.compose(rng, products=False) for _ in range(count // 2)]
    for _ in range(count // 2):
        width = int(rng.integers(640, 1281))
        image = procedural_texture(rng, int(width * rng.uniform(0.5, 1.0)), width)
        shelves.append(_whole_frame(camera(image, rng, np.zeros((0, 4), np.float32), [], 0.05)[0]))
    return [Frame(s, zone_counts(s.boxes, s.zones)) for s in shelves]


def infer(model_dir: Path, variant: str, frames: list[Frame]) -> list[Raw]:
    """Every frame's raw model outputs, with its letterbox."""
    manifest = load_manifest(model_dir)
    model = load_model(model_dir, variant, OnnxRuntimeConfig(intra_op_threads=1))
    pre = ImagePreprocessor(manifest.inputs[0], letterbox=True)
    out = []
    for frame in frames:
        buffer, box = pre(frame.shelf.image)
        out.append(Raw(model.runtime.run([buffer]), box, frame.shelf.image.shape[1], frame.shelf.image.shape[0]))
    model.runtime.close()
    return out


def detect(model_dir: Path, raws: list[Raw], nested: float | None) -> list[Detections]:
    """Every frame's detections down to score 0.05 (NMS keeps the same boxes above any higher threshold), with
    boxes nested in better ones dropped above `nested` (none when None)."""
    manifest = load_manifest(model_dir)
    spec = DecodeSpec.from_manifest(manifest, nested_threshold=nested).with_threshold(0.05)
    decoder = get_decoder(manifest.decoder)
    return [to_frame(decoder(r.outputs, spec)[0], r.box, r.width, r.height) for r in raws]


def at_threshold(frames: list[Frame], dets: list[Detections], threshold: float) -> dict[str, float]:
    """Count MAE over all zones, precision / recall at IoU 0.5, and the boxes on the product-free frames (the
    real photos where the set has them, else every frame without a product)."""
    free = [f.photo for f in frames] if any(f.photo for f in frames) else [len(f.shelf.boxes) == 0 for f in frames]
    errors, tp, kept_total, positives, on_free = [], 0, 0, 0, 0
    for frame, d, no_product in zip(frames, dets, free, strict=True):
        keep = d.scores >= threshold
        kept = Detections(d.boxes[keep], d.scores[keep], d.classes[keep])
        tp += sum(h for _, h in match(kept, frame.shelf.boxes))
        kept_total += len(kept)
        positives += len(frame.shelf.boxes)
        on_free += len(kept) if no_product else 0
        errors.append(zone_counts(kept.boxes, frame.shelf.zones) - frame.true_counts)
    err = np.concatenate(errors)
    return {
        "count_mae": round(float(np.abs(err).mean()), 4),
        "precision": round(tp / max(kept_total, 1), 4),
        "recall": round(tp / max(positives, 1), 4),
        "boxes_per_free_frame": round(on_free / max(sum(free), 1), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="Grocery Store Dataset folder (held-out photos)")
    parser.add_argument("--model", type=Path, default=REPO / "models" / "shelf-detector")
    parser.add_argument("--variant", default="onnx-fp32")
    parser.add_argument("--shelves", type=int, default=60)
    parser.add_argument("--textures", type=Path, nargs="+", required=True, help="held-out texture photo folders")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench")
    args = parser.parse_args(argv)
    sets = {
        "validation": validation(args.data, args.shelves),
        "hard": held_out(args.data, args.shelves, "hard", args.textures),
        "empty": held_out(args.data, args.shelves, "empty", args.textures),
    }
    raws = {name: infer(args.model, args.variant, frames) for name, frames in sets.items()}
    rows: list[dict[str, Any]] = []
    for nested in NESTED:
        dets = {name: detect(args.model, raw, nested) for name, raw in raws.items()}
        rows += [{"threshold": t, "nested": nested, **{n: at_threshold(sets[n], dets[n], t) for n in sets}}
                 for t in THRESHOLDS]  # fmt: skip
    best = min(rows, key=lambda r: (r["validation"]["count_mae"], -r["threshold"], r["nested"] or 1.0))
    chosen, nested_chosen = best["threshold"], best["nested"]
    print("| nested | score | val MAE | val P | val R | val boxes/free frame | hard MAE | hard R | boxes/real photo |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        v, h, e = r["validation"], r["hard"], r["empty"]
        mark = " *" if r is best else ""
        print(f"| {r['nested'] or '-'} | {r['threshold']:.2f}{mark} | {v['count_mae']:.3f} | "
              f"{v['precision']:.3f} | {v['recall']:.3f} | {v['boxes_per_free_frame']:.2f} | {h['count_mae']:.3f} | "
              f"{h['recall']:.3f} | {e['boxes_per_free_frame']:.2f} |")  # fmt: skip
    print(f"chosen on the validation set: score {chosen}, nested {nested_chosen}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "shelf_threshold.json").write_text(
        json.dumps({"chosen": chosen, "nested": nested_chosen, "rows": rows}, indent=2)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
