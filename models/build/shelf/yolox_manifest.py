"""Writes manifest.yaml of the fine-tuned YOLOX shelf detector around its fp32 ONNX (run with the project's venv).

python models/build/shelf/yolox_manifest.py --out models/shelf-detector --size 416
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from edge_agent.runtime.manifest import (  # noqa: E402
    InputSpec,
    Manifest,
    ModelFile,
    TensorSpec,
    load_manifest,
    sha256_file,
    write_manifest,
)


def manifest(out: Path, size: int, version: str) -> Manifest:
    cells = sum((size // s) ** 2 for s in (8, 16, 32))
    return Manifest(
        name=out.resolve().name,
        version=version,
        task="shelf",
        description=f"Class-agnostic product detector for shelf counting, {size}x{size}: COCO YOLOX-Nano "
        "fine-tuned on composed shelves (Grocery Store Dataset products, drawn walls and clutter as negatives)",
        files={
            "onnx-fp32": ModelFile(
                path="model.onnx", sha256=sha256_file(out / "model.onnx"), format="onnx", precision="fp32"
            )
        },
        default_variant="onnx-fp32",
        inputs=[InputSpec(name="images", shape=[1, size, size, 3], layout="NHWC", color="BGR", scale=1.0)],
        outputs=[TensorSpec(name="output0", shape=[1, 5, cells])],
        decoder="yolov8",
        labels=["product"],
        thresholds={"score": 0.35, "iou": 0.5, "nested": 0.5},
        params={"normalized_boxes": True, "pre_nms_top_k": 2000, "max_detections": 300, "class_agnostic": True},
    )


def add_tflite(out: Path, path: str) -> None:
    current = load_manifest(out)
    files = dict(current.files)
    files["tflite-int8"] = ModelFile(path=path, sha256=sha256_file(out / path), format="tflite", precision="int8")
    write_manifest(out, current.model_copy(update={"files": files}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--version", default="2.5.1")
    parser.add_argument("--add-tflite", help="record this int8 TFLite file of the folder in the manifest")
    parser.add_argument("--default", default=None, help="default variant to set")
    parser.add_argument("--drop", help="remove this variant (and its file) from the folder")
    parser.add_argument("--score", type=float, help="set the score threshold (bench.shelf_threshold's choice)")
    parser.add_argument("--nested", type=float, help="set the nested-box threshold (bench.shelf_threshold's choice)")
    args = parser.parse_args()
    if args.add_tflite:
        add_tflite(args.out, args.add_tflite)
    elif not (args.drop or args.default or args.score):  # --drop / --default / --score edit the manifest there
        write_manifest(args.out, manifest(args.out, args.size, args.version))
    if args.drop:
        current = load_manifest(args.out)
        (args.out / current.files[args.drop].path).unlink(missing_ok=True)
        files = {k: v for k, v in current.files.items() if k != args.drop}
        write_manifest(args.out, current.model_copy(update={"files": files}))
    if args.score:
        current = load_manifest(args.out)
        chosen = {"score": args.score} | ({"nested": args.nested} if args.nested else {})
        thresholds = {k: v for k, v in current.thresholds.items() if k != "nested"} | chosen
        write_manifest(args.out, current.model_copy(update={"thresholds": thresholds}))
    if args.default:
        current = load_manifest(args.out)
        write_manifest(args.out, current.model_copy(update={"default_variant": args.default}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
