"""DefectTask on a tiny real ONNX model whose anomaly map is the local brightness: verdicts, boxes, events, metrics."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from prometheus_client import CollectorRegistry

from edge_agent.config import OnnxRuntimeConfig
from edge_agent.metrics import AgentMetrics
from edge_agent.runtime.manifest import InputSpec, Manifest, ModelFile, TensorSpec, sha256_file, write_manifest
from edge_agent.runtime.registry import load_model
from edge_agent.tasks.base import Item, TaskContext
from edge_agent.tasks.defect.config import DefectTaskConfig
from edge_agent.tasks.defect.task import DefectTask

SIDE = 32


def brightness_model(folder: Path) -> Path:
    """anomaly_map = 4x4 mean brightness (0..1), score = max of its 3x3 average: bright spots are 'defects'."""
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["grey"], axes=[1], keepdims=1),
        helper.make_node("AveragePool", ["grey"], ["anomaly_map"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("AveragePool", ["anomaly_map"], ["pooled"], kernel_shape=[3, 3], strides=[1, 1]),
        helper.make_node("ReduceMax", ["pooled"], ["score"], axes=[2, 3], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "brightness",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, SIDE, SIDE])],
        [
            helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, [1, 1, SIDE // 4, SIDE // 4]),
            helper.make_tensor_value_info("score", TensorProto.FLOAT, [1, 1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "m.onnx"))
    manifest = Manifest(
        name="bright",
        version="1",
        task="defect",
        files={
            "onnx-int8": ModelFile(
                path="m.onnx", sha256=sha256_file(folder / "m.onnx"), format="onnx", precision="fp32"
            )
        },
        default_variant="onnx-int8",
        inputs=[InputSpec(name="image", shape=[1, 3, SIDE, SIDE], layout="NCHW", color="BGR", scale=1 / 255)],
        outputs=[
            TensorSpec(name="anomaly_map", shape=[1, 1, SIDE // 4, SIDE // 4]),
            TensorSpec(name="score", shape=[1, 1]),
        ],
        decoder="anomaly_map_score",
        thresholds={"score": 0.5},
    )
    write_manifest(folder, manifest)
    return folder


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return brightness_model(tmp_path / "model")


def make_task(model_dir: Path, **config: object) -> DefectTask:
    model = load_model(model_dir, None, OnnxRuntimeConfig())
    cfg = DefectTaskConfig.model_validate({"kind": "defect", **config})
    return DefectTask(cfg, model, TaskContext(pipeline="line1", site="s", device_id="d"))


def frame(square_at: tuple[int, int] | None = None, side: int = 64) -> np.ndarray:
    image = np.zeros((side, side, 3), np.uint8)
    if square_at is not None:
        x, y = square_at
        image[y : y + 24, x : x + 24] = 255
    return image


def judge(task: DefectTask, image: np.ndarray, ts: float = 1_700_000_000.0, **meta: object):  # type: ignore[no-untyped-def]
    item = Item(image, ts, "cam", 7, dict(meta))
    outputs = task.run(task.preprocess([item]))
    return task.logic(task.decode(outputs, [item])[0], item)


def test_clean_part_passes_without_event(model_dir: Path) -> None:
    out = judge(make_task(model_dir), frame(), filename="part_001.png")
    assert out.data is not None and out.data.passed is True
    assert out.data.item_id == "part_001.png"
    assert out.data.threshold == 0.5 and out.data.defect_box is None
    assert out.events == []


def test_defect_fails_with_box_and_bounded_snapshot(model_dir: Path) -> None:
    task = make_task(model_dir, snapshot_max_bytes=8000)
    out = judge(task, frame((40, 8)))
    assert out.data is not None and out.data.passed is False and out.data.score >= 0.5
    x, y, w, h = out.data.defect_box or [0, 0, 0, 0]
    assert 32 <= x <= 40 and 0 <= y <= 8 and x + w >= 60 and y + h >= 28
    [event] = out.events
    assert event.event == "defect" and event.severity == "critical" and event.subject == "cam-7"
    assert event.details["score"] == out.data.score and event.details["threshold"] == 0.5 and event.details["shift"]
    assert event.snapshot_jpeg is not None and len(event.snapshot_jpeg) <= 8000
    decoded = cv2.imdecode(np.frombuffer(event.snapshot_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape[2] == 3


def test_roi_crops_before_the_model_and_box_is_in_frame_pixels(model_dir: Path) -> None:
    task = make_task(model_dir, roi=(32, 0, 32, 32))
    assert judge(task, frame((0, 40))).data.passed is True  # type: ignore[union-attr]  # square outside the ROI
    out = judge(task, frame((40, 8)))
    assert out.data is not None and out.data.passed is False
    x, y, _w, _h = out.data.defect_box or [0, 0, 0, 0]
    assert 32 <= x <= 40 and 0 <= y <= 8


def test_frame_smaller_than_roi_is_a_data_error(model_dir: Path) -> None:
    from edge_agent.errors import DataError

    task = make_task(model_dir, roi=(32, 0, 64, 64))
    with pytest.raises(DataError, match="ROI"):
        judge(task, frame())


def test_metrics_count_items_and_defect_rate_per_shift(model_dir: Path) -> None:
    task = make_task(model_dir, shifts=["06:00", "18:00"], timezone="UTC")
    metrics = AgentMetrics(CollectorRegistry())
    task.metrics = metrics
    noon = 1_700_000_000 - (1_700_000_000 % 86400) + 12 * 3600  # 12:00 UTC: the 06:00 shift
    judge(task, frame(), ts=noon)
    judge(task, frame((40, 8)), ts=noon + 1)
    judge(task, frame(), ts=noon + 2)
    labels = {"pipeline": "line1", "shift": "06:00"}
    registry = metrics.registry
    assert registry.get_sample_value("edge_defect_items_total", {**labels, "verdict": "pass"}) == 2
    assert registry.get_sample_value("edge_defect_items_total", {**labels, "verdict": "fail"}) == 1
    assert registry.get_sample_value("edge_defect_rate", labels) == pytest.approx(1 / 3)
    judge(task, frame(), ts=noon + 8 * 3600)  # 20:00: the 18:00 shift starts from zero
    assert registry.get_sample_value("edge_defect_rate", {"pipeline": "line1", "shift": "18:00"}) == 0.0


def test_triggered_task_judges_only_triggered_frames(model_dir: Path) -> None:
    task = make_task(model_dir, trigger="mqtt")
    assert task.gate is not None
    assert task.preprocess([Item(frame(), 100.0, "cam", 1)]) == []
    assert judge(task, frame(), ts=100.0).data is None
    task.gate.fire("T-42")
    out = judge(task, frame((40, 8)), ts=task.gate.clock() + 0.01)
    assert out.data is not None and out.data.item_id == "T-42" and out.data.passed is False
    assert judge(task, frame(), ts=task.gate.clock() + 0.02).data is None  # one trigger, one item


def test_trigger_id_in_item_meta_is_judged_directly(model_dir: Path) -> None:
    task = make_task(model_dir, trigger="gpio")
    out = judge(task, frame(), trigger_id="plc-9")
    assert out.data is not None and out.data.item_id == "plc-9"


def test_set_threshold_and_snapshot_command(model_dir: Path) -> None:
    task = make_task(model_dir)
    assert task.snapshot() is None
    judge(task, frame((40, 8)))
    task.set_threshold("score", 1.5)
    out = judge(task, frame((40, 8)))
    assert out.data is not None and out.data.passed is True and out.data.threshold == 1.5
    with pytest.raises(ValueError, match="no threshold"):
        task.set_threshold("area", 3)
    snap = task.snapshot()
    assert snap is not None and snap[:2] == b"\xff\xd8"


def test_config_rejects_bad_shift_times() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="HH:MM"):
        DefectTaskConfig.model_validate({"kind": "defect", "shifts": ["6am"]})


def test_unknown_timezone_is_a_config_error(model_dir: Path) -> None:
    from edge_agent.errors import ConfigError

    with pytest.raises(ConfigError, match="time zone"):
        make_task(model_dir, timezone="Mars/Olympus")
