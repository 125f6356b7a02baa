"""`edge-agent models import`: a user's own detector file becomes a model folder the daemon runs.

    edge-agent models import best.onnx --task shelf
    edge-agent models import yolox_nano.onnx --task shelf --labels coco.txt --out models/my-yolox
    edge-agent models import detect.tflite --task shelf --labels cola,water,juice

Reads the file's tensors (and Ultralytics' ONNX metadata: class names, input size, stride), recognises the
output layout, writes manifest.yaml and runs the decoder once on a test image (--image, else a composed shelf).
Known layouts: Ultralytics YOLOv5 [1, 3*cells, 5+nc], YOLOv8/11 [1, 4+nc, cells], end-to-end YOLO26/YOLOv10
[1, K, 6], YOLOX [1, cells, 5+nc] and the four outputs of TFLite_Detection_PostProcess (SSD).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import re
import shutil
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.config import LiteRTConfig, OnnxRuntimeConfig
from edge_agent.errors import EdgeAgentError, ModelError
from edge_agent.runtime.base import Runtime, TensorInfo
from edge_agent.runtime.manifest import InputSpec, Manifest, ModelFile, TensorSpec, sha256_file, write_manifest
from edge_agent.runtime.registry import backend_for

STRIDES = (8, 16, 32)
LAYOUTS = (
    "YOLOv5 [1, 3*cells, 5+nc], YOLOv8/11 [1, 4+nc, cells], end-to-end YOLO26/YOLOv10 [1, K, 6], "
    "YOLOX [1, cells, 5+nc], SSD TFLite (4 outputs)"
)


@dataclass(frozen=True)
class Inspected:
    """What the file says about itself."""

    path: Path
    fmt: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def ultralytics(self) -> bool:
        return "ultralytics" in str(self.metadata.get("author", "")).lower()


@dataclass(frozen=True)
class Layout:
    """The decoder and its settings for the recognised output layout."""

    decoder: str
    num_classes: int
    params: dict[str, Any] = field(default_factory=dict)


def open_runtime(path: Path, fmt: str) -> Runtime:
    entry = ModelFile(path=path.name, sha256=sha256_file(path), format=fmt, precision="fp32")
    if fmt == "onnx":
        return backend_for("onnxruntime")(path, entry, OnnxRuntimeConfig())
    return backend_for("litert")(path, entry, LiteRTConfig(kind="litert"))


def read_metadata(path: Path, fmt: str) -> dict[str, Any]:
    """Ultralytics metadata: ONNX custom metadata, or the metadata.json it appends to TFLite files as a zip."""
    if fmt == "tflite":
        try:
            with zipfile.ZipFile(path) as archive:
                loaded: dict[str, Any] = json.loads(archive.read("metadata.json"))
                return loaded
        except (zipfile.BadZipFile, KeyError, ValueError):
            return {}
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    raw: dict[str, str] = dict(session.get_modelmeta().custom_metadata_map)
    meta: dict[str, Any] = dict(raw)
    for key in ("names", "imgsz", "stride"):
        if key in raw:
            with contextlib.suppress(ValueError, SyntaxError):
                meta[key] = ast.literal_eval(raw[key])
    return meta


def inspect(path: Path) -> Inspected:
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    fmt = {".onnx": "onnx", ".tflite": "tflite"}.get(path.suffix.lower())
    if fmt is None:
        raise ModelError(f"{path}: not an .onnx or .tflite file")
    runtime = open_runtime(path, fmt)
    try:
        return Inspected(path, fmt, list(runtime.inputs), list(runtime.outputs), read_metadata(path, fmt))
    finally:
        runtime.close()


def image_size(info: TensorInfo, path: Path) -> tuple[str, int, int]:
    """Layout, height and width of an image input."""
    shape = info.shape
    if len(shape) == 4 and shape[1] in (1, 3) and shape[2] and shape[3]:
        return "NCHW", int(shape[2]), int(shape[3])
    if len(shape) == 4 and shape[3] in (1, 3) and shape[1] and shape[2]:
        return "NHWC", int(shape[1]), int(shape[2])
    raise ModelError(
        f"{path}: input {info.name!r} has shape {list(shape)}; a detector needs a fixed image input "
        "[1, 3, H, W] or [1, H, W, 3] (export with a fixed image size, e.g. imgsz=640)"
    )


def cells(height: int, width: int, strides: tuple[int, ...] = STRIDES) -> int:
    return sum((height // s) * (width // s) for s in strides)


def detect_layout(ins: Inspected) -> Layout:
    """Which decoder reads these outputs; ModelError naming the file and the known layouts otherwise."""
    _, height, width = image_size(ins.inputs[0], ins.path)
    shapes = [list(o.shape) for o in ins.outputs]
    if len(shapes) == 4 and ins.fmt == "tflite":
        return Layout("ssd_tflite", 0)
    if len(shapes) == 1 and len(shapes[0]) == 3 and None not in shapes[0][1:]:
        a, b = int(shapes[0][1] or 0), int(shapes[0][2] or 0)
        n = cells(height, width)
        if b == n and a >= 5:
            return Layout("yolov8", a - 4)
        if a == n and b >= 6 and not ins.ultralytics:
            return Layout("yolox", b - 5, {"strides": list(STRIDES)})
        if a == 3 * n and b >= 6:
            return Layout("yolov5", b - 5)
        if b == 6 and a <= 1000:
            return Layout("yolo_e2e", len(ins.metadata.get("names", {})) or 0)
    raise ModelError(
        f"{ins.path}: output shape(s) {shapes} for a {width}x{height} input match no layout edge-agent knows "
        f"({LAYOUTS}); export with the default head, or write manifest.yaml by hand (see docs)"
    )


def resolve_labels(given: str | None, ins: Inspected, layout: Layout) -> list[str]:
    """--labels (a file with one per line, or a comma list), else Ultralytics' names, else class0..."""
    names = ins.metadata.get("names")
    if given is not None:
        source = Path(given)
        text = source.read_text(encoding="utf-8") if source.is_file() else given.replace(",", "\n")
        labels = [line.strip() for line in text.splitlines() if line.strip()]
    elif isinstance(names, dict):
        labels = [str(names[k]) for k in sorted(names)]
    elif isinstance(names, list):
        labels = [str(n) for n in names]
    else:
        labels = [f"class{i}" for i in range(layout.num_classes)]
    if layout.num_classes and len(labels) != layout.num_classes:
        raise ModelError(
            f"--labels: {len(labels)} label(s) for {ins.path.name}, whose output has {layout.num_classes} classes; "
            "give one label per class, in the model's class order"
        )
    if not labels:
        raise ModelError(f"--labels: {ins.path.name} does not name its classes; pass --labels FILE or a,b,c")
    return labels


def input_spec(ins: Inspected, layout: Layout) -> InputSpec:
    info = ins.inputs[0]
    kind, height, width = image_size(info, ins.path)
    shape: list[int | None] = [1, 3, height, width] if kind == "NCHW" else [1, height, width, 3]
    dtype = str(info.dtype)
    if layout.decoder == "yolox":  # Megvii's YOLOX: BGR 0..255, no normalisation
        return InputSpec(name=info.name, shape=shape, dtype=dtype, layout=kind, color="BGR")
    if layout.decoder == "ssd_tflite" and dtype == "float32":  # MobileNet SSD: -1..1
        return InputSpec(
            name=info.name,
            shape=shape,
            dtype=dtype,
            layout=kind,
            color="RGB",
            scale=1 / 127.5,
            mean=[1.0, 1.0, 1.0],
            std=[1.0, 1.0, 1.0],
        )
    scale = 1 / 255 if dtype == "float32" else 1.0
    return InputSpec(name=info.name, shape=shape, dtype=dtype, layout=kind, color="RGB", scale=scale)


def model_name(folder: Path) -> str:
    name = re.sub(r"[^a-z0-9_.-]+", "-", folder.resolve().name.lower()).strip("-.") or "imported"
    return name if name[0].isalnum() else f"m{name}"


def ssd_order(outputs: list[np.ndarray]) -> list[str]:
    """Names of the four SSD outputs in file order: boxes [1, K, 4], count [1], classes (whole numbers), scores."""
    order: list[str] = []
    flat = [np.asarray(o) for o in outputs]
    for out in flat:
        if out.ndim == 3 and out.shape[-1] == 4:
            order.append("boxes")
        elif out.size == 1:
            order.append("count")
        elif np.allclose(out, np.round(out)) and "classes" not in order:
            order.append("classes")
        else:
            order.append("scores")
    if sorted(order) != ["boxes", "classes", "count", "scores"]:
        raise ModelError(f"SSD outputs {[list(o.shape) for o in flat]} are not boxes, classes, scores and count")
    return order


def test_image(path: Path | None) -> np.ndarray:
    """The user's picture, or a composed shelf (always at hand: procedural products)."""
    import cv2

    if path is not None:
        image = cv2.imread(str(path))
        if image is None:
            raise ModelError(f"--image {path}: not a readable image")
        return np.asarray(image)
    from edge_agent.tasks.shelf.compose import ProductLibrary, ShelfComposer

    return ShelfComposer(ProductLibrary.procedural(seed=3)).compose(np.random.default_rng(3)).image


def raw_outputs(model_dir: Path, manifest: Manifest, image: np.ndarray) -> list[np.ndarray]:
    from edge_agent.tasks.preprocess import ImagePreprocessor

    entry = manifest.files[manifest.default_variant]
    runtime = open_runtime(model_dir / entry.path, entry.format)
    try:
        buffer, _ = ImagePreprocessor(manifest.inputs[0], letterbox=True)(image)
        return runtime.run([buffer])
    finally:
        runtime.close()


def settle_params(layout: Layout, manifest: Manifest, outputs: list[np.ndarray]) -> Layout:
    """What only a run shows: SSD output order; boxes in 0..1 (Ultralytics TFLite); YOLOX graphs that decode."""
    params = dict(layout.params)
    if layout.decoder == "ssd_tflite":
        params["ssd_outputs"] = ssd_order(outputs)
        return Layout(layout.decoder, layout.num_classes, params)
    out = np.asarray(outputs[0], np.float32)[0]
    rows = out.T if layout.decoder == "yolov8" else out
    dims = manifest.inputs[0].shape[1:3] if manifest.inputs[0].layout == "NHWC" else manifest.inputs[0].shape[2:4]
    size = max(d or 0 for d in dims)
    if layout.decoder == "yolox" and float(np.percentile(np.abs(rows[:, :2]), 90)) > 4.0:
        return Layout("yolov5", layout.num_classes)  # the export decoded the grid itself: pixel rows
    if layout.decoder in ("yolov8", "yolov5", "yolo_e2e") and float(np.abs(rows[:, :4]).max()) <= 1.5 < (size or 2):
        params["normalized_boxes"] = True
    return Layout(layout.decoder, layout.num_classes, params)


def build_manifest(ins: Inspected, layout: Layout, labels: list[str], task: str, name: str) -> Manifest:
    fmt = ins.fmt
    entry = ModelFile(
        path=ins.path.name,
        sha256=sha256_file(ins.path),
        format=fmt,
        precision="fp32",
    )
    variant = f"{fmt}-fp32"
    params: dict[str, Any] = {"pre_nms_top_k": 3000, "max_detections": 300, **layout.params}
    return Manifest(
        name=name,
        version="imported",
        task=task,
        description=f"imported from {ins.path.name} ({layout.decoder} layout)",
        files={variant: entry},
        default_variant=variant,
        inputs=[input_spec(ins, layout)],
        outputs=[TensorSpec(name=o.name, shape=list(o.shape), dtype="float32") for o in ins.outputs],
        decoder=layout.decoder,
        labels=labels,
        thresholds={"score": 0.25, "iou": 0.45},
        params=params,
    )


def import_model(
    file: Path, task: str, labels: str | None, out: Path | None, image: Path | None, class_agnostic: bool
) -> tuple[Path, Manifest, int]:
    """Write the model folder; returns it, its manifest and how many boxes the decoder found on the test image."""
    from edge_agent.tasks.detection import DecodeSpec, get_decoder

    ins = inspect(file)
    layout = detect_layout(ins)
    folder = out or file.parent
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / file.name).resolve() != file.resolve():
        shutil.copyfile(file, folder / file.name)
        ins = Inspected(folder / file.name, ins.fmt, ins.inputs, ins.outputs, ins.metadata)
    names = resolve_labels(labels, ins, layout)
    if layout.num_classes == 0:
        layout = Layout(layout.decoder, len(names), layout.params)
    if class_agnostic:
        layout = Layout(layout.decoder, layout.num_classes, {**layout.params, "class_agnostic": True})
    manifest = build_manifest(ins, layout, names, task, model_name(folder))
    picture = test_image(image)
    outputs = raw_outputs(folder, manifest, picture)
    layout = settle_params(layout, manifest, outputs)
    manifest = manifest.model_copy(update={"decoder": layout.decoder, "params": {**manifest.params, **layout.params}})
    found = get_decoder(manifest.decoder)(outputs, DecodeSpec.from_manifest(manifest))[0]
    write_manifest(folder, manifest)
    return folder, manifest, len(found)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-agent models import", description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path, help="the .onnx or .tflite detector")
    parser.add_argument("--task", required=True, choices=["shelf"], help="the job the model serves")
    parser.add_argument("--labels", help="class names: a file with one per line, or a,b,c (default: the file's own)")
    parser.add_argument("--out", type=Path, help="model folder to write (default: the file's folder)")
    parser.add_argument("--image", type=Path, help="test picture for the decoder check (default: a composed shelf)")
    parser.add_argument("--class-agnostic", action="store_true", help="one NMS over all classes (count products)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        folder, manifest, found = import_model(
            args.file, args.task, args.labels, args.out, args.image, args.class_agnostic
        )
    except (EdgeAgentError, OSError) as exc:
        print(f"edge-agent models import: {exc}", file=sys.stderr)
        return 2
    spec = manifest.inputs[0]
    print(
        f"wrote {folder / 'manifest.yaml'}: decoder {manifest.decoder}, {len(manifest.labels)} label(s), "
        f"input {spec.layout} {list(spec.shape)} {spec.color}; the decoder found {found} box(es) on the test image"
    )
    print(f"use it: `model: {{path: {folder}}}` in a shelf pipeline, then `edge-agent check CONFIG`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
