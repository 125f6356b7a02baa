"""Exports a trained shelf detector: fp32 ONNX, static QDQ int8 ONNX, full-integer int8 TFLite, manifest.yaml.

    python models/build/shelf/export.py --weights /tmp/shelf-data/run/last.pt \
        --calib /tmp/shelf-data/calib --out models/shelf-detector

The TFLite file comes from the same network rebuilt in Keras with the torch weights copied in
(BatchNorm folded first); the script checks both rebuilt graphs against torch before writing.
Calibration uses composed shelves from the training split (never the benchmark's held-out set).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import onnx
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from keras_net import build_keras, copy_weights  # noqa: E402
from model import REACH, SIZE, ShelfNet, fuse, make_anchors  # noqa: E402

from edge_agent.runtime.manifest import InputSpec, Manifest, ModelFile, TensorSpec, sha256_file, write_manifest  # noqa: E402

VERSION = "1.0.0"


def load_torch(weights: Path) -> ShelfNet:
    model = ShelfNet()
    model.load_state_dict(torch.load(weights, weights_only=True))
    return fuse(model.eval())


def calibration_images(folder: Path, count: int) -> np.ndarray:
    """The first `count` shelves of the given shards (a fixed, reproducible pick)."""
    chunks: list[np.ndarray] = []
    for path in sorted(folder.glob("shard-*.npz")):
        with np.load(path) as shard:
            chunks.append(shard["images"][: count - sum(len(c) for c in chunks)])
        if sum(len(c) for c in chunks) >= count:
            break
    images = np.concatenate(chunks)
    return (images[..., ::-1].astype(np.float32) / 255).copy()  # BGR shards -> RGB 0..1


def export_onnx(model: ShelfNet, path: Path) -> None:
    dummy = torch.zeros(1, SIZE, SIZE, 3)
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=["images"],
        output_names=["output0"],
        opset_version=17,
        dynamo=False,
        external_data=False,
    )
    onnx.checker.check_model(str(path))


def decode_tail(graph: onnx.GraphProto) -> list[str]:
    """Nodes after the head convolutions (flatten, sigmoid, box arithmetic, concat): they stay float.

    Quantizing them would put pixel-scale box arithmetic and 0..1 scores through one int8 scale;
    in float they cost microseconds.
    """
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    tail: list[str] = []
    frontier = [n for n in graph.node if n.op_type in ("Flatten", "Reshape")]
    seen: set[str] = set()
    while frontier:
        node = frontier.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        tail.append(node.name)
        for out in node.output:
            frontier += consumers.get(out, [])
    return tail


def quantize_onnx(fp32: Path, int8: Path, calib: np.ndarray) -> None:
    """QDQ int8 with the project's settings (U8S8, see edge_agent.runtime.quantize); box decoding stays float."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edge_agent.runtime.quantize import quantize_onnx as quantize

    prepped = int8.with_suffix(".prep.onnx")
    quant_pre_process(str(fp32), str(prepped), skip_symbolic_shape=True)
    tail = decode_tail(onnx.load(str(prepped)).graph)
    try:
        quantize(prepped, int8, [image[None] for image in calib], "images", exclude_nodes=tail, preprocess=False)
    finally:
        prepped.unlink(missing_ok=True)


def export_tflite(model: ShelfNet, path: Path, calib: np.ndarray) -> None:
    import tensorflow as tf

    anchors, strides = make_anchors()
    keras_model = build_keras(anchors.numpy(), (strides * REACH).numpy())
    copy_weights(model, keras_model)
    probe = calib[:2]
    want = model(torch.from_numpy(probe)).detach().numpy()
    got = np.concatenate([keras_model(image[None]).numpy() for image in probe])
    print(f"keras vs torch max abs diff {np.abs(want - got).max():.2e}")
    assert np.abs(want - got).max() < 1e-3, "Keras rebuild does not match the torch network"

    def representative() -> object:
        for image in calib:
            yield [image[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path.write_bytes(converter.convert())


def check_onnx(path: Path, model: ShelfNet, probe: np.ndarray) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for image in probe:
        got = session.run(None, {"images": image[None]})[0]
        want = model(torch.from_numpy(image[None])).detach().numpy()
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def write(out: Path, files: dict[str, tuple[str, str, str]]) -> None:
    manifest = Manifest(
        name="shelf-detector",
        version=VERSION,
        task="shelf",
        description="Class-agnostic product-facing detector for shelf counting, 320x320, trained on composed shelves",
        files={
            key: ModelFile(path=name, sha256=sha256_file(out / name), format=fmt, precision=precision)  # type: ignore[arg-type]
            for key, (name, fmt, precision) in files.items()
        },
        default_variant="onnx-int8",
        inputs=[
            InputSpec(
                name="images", shape=[1, SIZE, SIZE, 3], dtype="float32", layout="NHWC", color="RGB", scale=1 / 255
            )
        ],
        outputs=[TensorSpec(name="output0", shape=[1, 5, 2100], dtype="float32")],
        decoder="yolov8",
        labels=["product"],
        thresholds={"score": 0.35, "iou": 0.5},
        params={"normalized_boxes": True, "pre_nms_top_k": 2000, "max_detections": 300, "class_agnostic": True},
    )
    write_manifest(out, manifest)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--calib", type=Path, required=True, help="npz shards of composed training-split shelves")
    parser.add_argument("--calib-count", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "shelf-detector")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    model = load_torch(args.weights)
    calib = calibration_images(args.calib, args.calib_count)
    export_onnx(model, args.out / "model.onnx")
    print(f"onnx fp32 vs torch max abs diff {check_onnx(args.out / 'model.onnx', model, calib[:2]):.2e}")
    quantize_onnx(args.out / "model.onnx", args.out / "model.int8.onnx", calib)
    print(f"onnx int8 vs torch max abs diff {check_onnx(args.out / 'model.int8.onnx', model, calib[:2]):.2e}")
    export_tflite(model, args.out / "model.int8.tflite", calib)
    files = {
        "onnx-fp32": ("model.onnx", "onnx", "fp32"),
        "onnx-int8": ("model.int8.onnx", "onnx", "int8"),
        "tflite-int8": ("model.int8.tflite", "tflite", "int8"),
    }
    write(args.out, files)
    for name, _, _ in files.values():
        print(f"{name}: {(args.out / name).stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
