"""A user's own YOLOv8-style ONNX export (built here from a random-weight network) runs with only a manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_agent.config import OnnxRuntimeConfig
from edge_agent.runtime.manifest import InputSpec, Manifest, ModelFile, TensorSpec, sha256_file, write_manifest
from edge_agent.runtime.registry import load_model
from edge_agent.tasks.base import Item, TaskContext
from edge_agent.tasks.detection import box_iou
from edge_agent.tasks.shelf.config import ShelfTaskConfig
from edge_agent.tasks.shelf.task import ShelfTask

SIZE, NC, STRIDE = 64, 3, 8
N = (SIZE // STRIDE) ** 2


def build_yolov8_like(path: Path, seed: int = 0) -> None:
    """images [1, 3, 64, 64] -> conv -> [1, 4 + nc, N]: cx, cy, w, h in pixels, then sigmoid class scores."""
    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array(rng.normal(0, 0.5, (4 + NC, 3, STRIDE, STRIDE)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.normal(0, 0.5, 4 + NC).astype(np.float32), "b")
    shape = numpy_helper.from_array(np.array([1, 4 + NC, N], np.int64), "shape")
    split = numpy_helper.from_array(np.array([4, NC], np.int64), "split")
    scale = numpy_helper.from_array(np.array(SIZE, np.float32), "scale")
    nodes = [
        helper.make_node("Conv", ["images", "w", "b"], ["feat"], strides=[STRIDE, STRIDE]),
        helper.make_node("Reshape", ["feat", "shape"], ["flat"]),
        helper.make_node("Split", ["flat", "split"], ["box_raw", "cls_raw"], axis=1),
        helper.make_node("Sigmoid", ["box_raw"], ["box_unit"]),
        helper.make_node("Mul", ["box_unit", "scale"], ["box"]),
        helper.make_node("Sigmoid", ["cls_raw"], ["cls"]),
        helper.make_node("Concat", ["box", "cls"], ["output0"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "yolov8_like",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + NC, N])],
        [weight, bias, shape, split, scale],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture
def user_model(tmp_path: Path) -> Path:
    folder = tmp_path / "my-yolov8"
    folder.mkdir()
    build_yolov8_like(folder / "best.onnx")
    manifest = Manifest(
        name="my-yolov8",
        version="0.1",
        task="shelf",
        files={
            "onnx-fp32": ModelFile(
                path="best.onnx", sha256=sha256_file(folder / "best.onnx"), format="onnx", precision="fp32"
            )
        },
        default_variant="onnx-fp32",
        inputs=[InputSpec(name="images", shape=[1, 3, SIZE, SIZE], layout="NCHW", color="RGB", scale=1 / 255)],
        outputs=[TensorSpec(name="output0", shape=[1, 4 + NC, N])],
        decoder="yolov8",
        labels=["cola", "water", "juice"],
        thresholds={"score": 0.6, "iou": 0.45},
    )
    write_manifest(folder, manifest)
    return folder


def reference(raw: np.ndarray, score: float, iou: float) -> tuple[np.ndarray, np.ndarray]:
    """Plain per-candidate loop: what the decoder must reproduce (boxes in model pixels, classes)."""
    cols = raw[0].T
    cls = cols[:, 4:].argmax(1)
    best = cols[np.arange(len(cols)), 4 + cls]
    order = [i for i in np.argsort(-best, kind="stable") if best[i] >= score]
    boxes = np.stack(
        [
            cols[:, 0] - cols[:, 2] / 2,
            cols[:, 1] - cols[:, 3] / 2,
            cols[:, 0] + cols[:, 2] / 2,
            cols[:, 1] + cols[:, 3] / 2,
        ],
        1,
    )
    keep: list[int] = []
    for i in order:
        if all(cls[k] != cls[i] or box_iou(boxes[[i]], boxes[[k]])[0, 0] <= iou for k in keep):
            keep.append(int(i))
    return boxes[keep], cls[keep]


def test_random_weight_yolov8_export_runs_through_the_shelf_task(user_model: Path) -> None:
    model = load_model(user_model, None, OnnxRuntimeConfig())
    zones = [{"name": "all", "polygon": [[0, 0], [128, 0], [128, 96], [0, 96]]}]
    task = ShelfTask(
        ShelfTaskConfig.model_validate({"kind": "shelf", "zones": zones, "smoothing_frames": 1}),
        model,
        TaskContext("p", "s", "d"),
    )
    frame = np.random.default_rng(3).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    item = Item(frame, 0.0, "test", 0)
    inputs = task.preprocess([item])
    raw = ort.InferenceSession(str(user_model / "best.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"images": inputs[0]}
    )[0]
    decoded = task.decode(task.run(inputs), [item])[0]
    out = task.logic(decoded, item)

    want_boxes, want_cls = reference(raw, 0.6, 0.45)
    assert len(want_boxes) > 0, "the random network should produce some confident boxes"
    # 128x96 letterboxed into 64x64: scale 0.5, 8 px bars above and below.
    want_frame = (want_boxes - np.array([0, 8, 0, 8])) / 0.5
    want_frame[:, [0, 2]] = want_frame[:, [0, 2]].clip(0, 128)
    want_frame[:, [1, 3]] = want_frame[:, [1, 3]].clip(0, 96)
    inside = (want_frame[:, 2] > want_frame[:, 0]) & (want_frame[:, 3] > want_frame[:, 1])  # not in the bars
    want_frame, want_cls = want_frame[inside], want_cls[inside]
    assert len(want_frame) > 0
    assert decoded.detections.classes.tolist() == want_cls.tolist()
    np.testing.assert_allclose(decoded.detections.boxes, want_frame, atol=1e-3)
    assert out.data is not None and out.data.detections == len(want_frame)  # type: ignore[union-attr]


def test_manifest_naming_the_wrong_decoder_is_a_clear_error(user_model: Path) -> None:
    from edge_agent.errors import ModelError

    manifest_path = user_model / "manifest.yaml"
    manifest_path.write_text(manifest_path.read_text().replace("decoder: yolov8", "decoder: yolov5"))
    model = load_model(user_model, None, OnnxRuntimeConfig())
    zones = [{"name": "all", "polygon": [[0, 0], [128, 0], [128, 96]]}]
    task = ShelfTask(
        ShelfTaskConfig.model_validate({"kind": "shelf", "zones": zones}), model, TaskContext("p", "s", "d")
    )
    item = Item(np.zeros((96, 128, 3), np.uint8), 0.0, "test", 0)
    with pytest.raises(ModelError, match="yolov5"):
        task.decode(task.run(task.preprocess([item])), [item])
