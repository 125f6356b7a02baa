"""KolektorSDD accuracy of `edge-agent fit defect` with its defaults: fit on the train split's good parts only,
judge the val split's good and defective parts.

    OPENBLAS_NUM_THREADS=1 python -m bench.defect_kolektor --data ../shared/data/kolektorsdd --fit
    OPENBLAS_NUM_THREADS=1 python -m bench.defect_kolektor --data ../shared/data/kolektorsdd --train-defects

The val split holds only 10 defective parts (an AUROC from them moves by about 0.05 with one part);
--train-defects adds the train split's 42 defective parts, which the fit never sees (it reads the
train split's good parts only), so the defect figures rest on 52 parts.

KolektorSDD (CC BY-NC-SA 4.0, non-commercial) is read in place and never copied into the repository; the
model fitted here goes to artifacts/ (ignored by git) and must not be shipped. Reports, per variant (fp32
ONNX, int8 ONNX, int8 TFLite): image AUROC, pixel AUROC against the polygon masks, and the false-reject and
miss rates at the threshold the fit chose from good parts alone, each with its 95% Clopper-Pearson interval.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads: the nearest-neighbour product, 1 thread

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bench.defect_common import REPO, fit_defaults, judge_all, markdown, save
from edge_agent.errors import EdgeAgentError
from edge_agent.runtime.manifest import load_manifest

NOTE = (
    "Fitted on KolektorSDD (CC BY-NC-SA 4.0) good train parts with the fit defaults: for benchmarking only,"
    " never shipped or used commercially."
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


def gt_mask(sample: Sample, width: int, height: int) -> np.ndarray:
    """The defect polygons filled at the image's own size."""
    mask = np.zeros((height, width), np.uint8)
    for poly in sample.polygons:
        pts = np.round(poly * [width, height] * 4).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=2)
    return mask


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="KolektorSDD folder (images/, labels/)")
    p.add_argument("--model", type=Path, default=REPO / "artifacts" / "defect-kolektor", help="fitted model folder")
    p.add_argument("--fit", action="store_true", help="fit the model first (fit defaults, good train parts only)")
    p.add_argument("--json", type=Path, default=REPO / "artifacts" / "defect_kolektor.json", help="results file")
    p.add_argument("--train-defects", action="store_true", help="judge the train split's defective parts too")
    args = p.parse_args(argv)
    fit = None
    if args.fit:
        fit = fit_defaults([s.path for s in read_split(args.data, "train") if not s.defective], args.model, NOTE)
    val = read_split(args.data, "val")
    if args.train_defects:
        val += [s for s in read_split(args.data, "train") if s.defective]
    frames = [cv2.imread(str(s.path), cv2.IMREAD_ANYCOLOR) for s in val]
    labels = np.array([s.defective for s in val])
    masks = [gt_mask(s, f.shape[1], f.shape[0]) for s, f in zip(val, frames)]
    try:
        table = judge_all(args.model, frames, labels, masks)
        manifest = load_manifest(args.model)
    except EdgeAgentError as exc:
        print(f"error: {exc} (fit one with --fit)", file=sys.stderr)
        return 2
    split = "val + train defects" if args.train_defects else "val"
    title = f"KolektorSDD {split}: {int((~labels).sum())} good, {int(labels.sum())} defective parts ({args.model.name})"
    text = markdown(table, title)
    print(text)
    command = " ".join(["python -m bench.defect_kolektor", *(argv if argv is not None else sys.argv[1:])])
    save(args.json, {"model": str(args.model), "fit": fit, "fit_metrics": manifest.metrics, "variants": table,
                     "markdown": text, "command": command})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
