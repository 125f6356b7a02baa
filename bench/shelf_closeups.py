"""Boxes the shelf detector puts on real close-up photos: the held-out in-store package photos of the Grocery Store
Dataset (a hand-held or shelved milk, juice or yoghurt pack, often with more packs behind it; no boxes are labelled).

    python -m bench.shelf_closeups --data ../shared/data/grocery-store --models models/shelf-detector OTHER_MODEL

There is no ground truth, so it reports what can be read without one: boxes per photo, photos with no box at all
(the photographed product missed), photos with a box wider than 30% of the frame (the close-up product found) and
the median of each photo's highest score. Photos are the held-out 20% of the composer's hash split, never trained on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from edge_agent.config import OnnxRuntimeConfig
from edge_agent.runtime.manifest import load_manifest
from edge_agent.runtime.registry import load_model
from edge_agent.tasks.detection import DecodeSpec, get_decoder
from edge_agent.tasks.preprocess import ImagePreprocessor
from edge_agent.tasks.shelf.compose import _in_split
from edge_agent.tasks.shelf.task import to_frame


def held_out_packages(data: Path) -> list[Path]:
    return sorted(p for p in (data / "train" / "Packages").rglob("*.jpg") if _in_split(p, "heldout", 0.2))


def measure(model_dir: Path, photos: list[Path]) -> str:
    manifest = load_manifest(model_dir)
    model = load_model(model_dir, manifest.default_variant, OnnxRuntimeConfig(intra_op_threads=1))
    spec, decoder = DecodeSpec.from_manifest(manifest), get_decoder(manifest.decoder)
    pre = ImagePreprocessor(manifest.inputs[0], letterbox=True)
    counts, wide, top = [], 0, []
    for path in photos:
        image = cv2.imread(str(path))
        buffer, box = pre(image)
        dets = to_frame(decoder(model.runtime.run([buffer]), spec)[0], box, image.shape[1], image.shape[0])
        counts.append(len(dets.scores))
        top.append(float(dets.scores.max()) if len(dets.scores) else 0.0)
        wide += int(bool(((dets.boxes[:, 2] - dets.boxes[:, 0]) / image.shape[1] > 0.3).any()))
    c = np.asarray(counts)
    return (
        f"| {manifest.name} {manifest.version} | {manifest.default_variant} | {spec.score_threshold:g} "
        f"| {c.mean():.2f} | {int((c == 0).sum())} | {wide} | {float(np.median(top)):.2f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the Grocery Store Dataset folder")
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="model folders to compare")
    args = parser.parse_args(argv)
    photos = held_out_packages(args.data)
    print(f"{len(photos)} held-out package photos\n")
    head = "| model | variant | score threshold | boxes / photo | photos with no box | photos with a box > 30% wide |"
    print(head + " median top score |")
    print("|---|---|---|---|---|---|---|")
    for model_dir in args.models:
        print(measure(model_dir, photos))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
