"""KolektorSDD accuracy of the defect recipe: fit on train good parts, judge val good and defective parts.

    python -m bench.defect_kolektor --data /work/shared/data/kolektorsdd --fit --fit-python /work/buildenv/bin/python

KolektorSDD (CC BY-NC-SA 4.0, non-commercial) is read in place and never copied into the repository;
the model fitted here goes to artifacts/ (ignored by git) and must not be shipped. Reports image AUROC,
F1 at the fit's calibrated threshold, the miss rate at a 1% false-reject rate and pixel AUROC for the
fp32 ONNX, int8 ONNX and int8 TFLite files side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_agent.errors import EdgeAgentError
from edge_agent.runtime.manifest import load_manifest
from edge_agent.tasks.defect.evaluate import evaluate, markdown

REPO = Path(__file__).resolve().parents[1]
NOTE = (
    "Fitted on KolektorSDD (CC BY-NC-SA 4.0): for benchmarking only, never shipped or used commercially. "
    "Threshold set with the train split's known defects."
)


@dataclass
class Sample:
    path: Path
    polygons: list[np.ndarray]  # normalised x, y pairs

    @property
    def defective(self) -> bool:
        return bool(self.polygons)


def read_split(data: Path, split: str) -> list[Sample]:
    samples = []
    for image in sorted((data / "images" / split).glob("*.jpg")):
        label = data / "labels" / split / f"{image.stem}.txt"
        polygons = []
        if label.is_file():
            for line in label.read_text().splitlines():
                values = line.split()[1:]
                if len(values) >= 6:
                    polygons.append(np.asarray(values, np.float64).reshape(-1, 2))
        samples.append(Sample(image, polygons))
    if not samples:
        raise SystemExit(f"error: no images in {data / 'images' / split}; is --data the KolektorSDD folder?")
    return samples


def fit(args: argparse.Namespace, samples: list[Sample]) -> None:
    """Run `fit defect` in the training interpreter on symlinks to the train split (nothing is copied)."""
    with tempfile.TemporaryDirectory() as tmp:
        good, bad = Path(tmp, "good"), Path(tmp, "defects")
        good.mkdir()
        bad.mkdir()
        for s in samples:
            (bad if s.defective else good).joinpath(s.path.name).symlink_to(s.path.resolve())
        cmd = [args.fit_python, "-m", "edge_agent.tasks.defect.fit", "--good", str(good), "--defects", str(bad),
               "--out", str(args.model), "--force", "--size", args.size, "--steps", str(args.steps),
               "--threads", str(args.threads), "--width", str(args.width), "--crop", str(args.crop),
               "--card-note", NOTE]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(REPO))
        print("+", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True, env=env)


def gt_mask(sample: Sample, width: int, height: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    for poly in sample.polygons:
        pts = np.round(poly * [width, height] * 4).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=2)
    return mask


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="KolektorSDD folder (images/, labels/)")
    p.add_argument("--model", type=Path, default=REPO / "artifacts" / "defect-kolektor", help="fitted model folder")
    p.add_argument("--fit", action="store_true", help="fit the model first (needs torch and tensorflow)")
    p.add_argument("--fit-python", default=sys.executable, help="interpreter with the train extra, for --fit")
    p.add_argument("--size", default="160x384", help="model input WIDTHxHEIGHT for --fit")
    p.add_argument("--steps", type=int, default=1500, help="training steps for --fit")
    p.add_argument("--threads", type=int, default=2, help="training threads for --fit")
    p.add_argument("--width", type=int, default=16, help="channels of the model's first layer for --fit")
    p.add_argument("--crop", type=int, default=128, help="training crop side in input pixels for --fit")
    p.add_argument("--json", type=Path, default=REPO / "artifacts" / "defect_kolektor.json", help="results file")
    args = p.parse_args(argv)
    if args.fit:
        fit(args, read_split(args.data, "train"))
    val = read_split(args.data, "val")
    frames = [cv2.imread(str(s.path), cv2.IMREAD_COLOR) for s in val]
    labels = np.array([s.defective for s in val])
    try:
        manifest = load_manifest(args.model)
        h, w = manifest.inputs[0].shape[2] or 1, manifest.inputs[0].shape[3] or 1
        table = evaluate(args.model, frames, labels, [gt_mask(s, w, h) for s in val])
    except EdgeAgentError as exc:
        print(f"error: {exc} (fit one with --fit)", file=sys.stderr)
        return 2
    int8 = table["onnx-int8"]["image_auroc"]
    title = f"KolektorSDD val: {int((~labels).sum())} good, {int(labels.sum())} defective parts ({args.model.name})"
    text = markdown(table, title)
    print(text)
    print(f"goal: image AUROC >= 0.95 ({'met' if int8 >= 0.95 else 'not met'} by int8 ONNX: {int8})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python -m bench.defect_kolektor", *(argv if argv is not None else sys.argv[1:])])
    args.json.write_text(json.dumps({"model": str(args.model), "threshold": manifest.thresholds["score"],
                                     "variants": table, "markdown": text, "command": command}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
