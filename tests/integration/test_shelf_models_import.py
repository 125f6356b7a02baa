"""`edge-agent models import` on detector files built here with the onnx helper API (Ultralytics, YOLO26
end-to-end, YOLOX layouts), then `edge-agent check` and the shelf task on the imported folder."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from edge_agent.check import check_config
from edge_agent.config import OnnxRuntimeConfig
from edge_agent.errors import ModelError
from edge_agent.models_import import main
from edge_agent.runtime.manifest import load_manifest
from edge_agent.runtime.registry import load_model
from edge_agent.tasks.base import Item, TaskContext
from edge_agent.tasks.shelf.config import ShelfTaskConfig
from edge_agent.tasks.shelf.task import ShelfTask

SIZE = 64
CELLS = (SIZE // 8) ** 2 + (SIZE // 16) ** 2 + (SIZE // 32) ** 2  # 84 for strides 8, 16, 32
NAMES = {0: "cola", 1: "water", 2: "juice"}


def build(path: Path, out_shape: list[int], box_rows: list[int], box_axis: int, metadata: dict[str, str]) -> None:
    """images [1, 3, 64, 64] -> mean colour -> MatMul -> Reshape -> Sigmoid, box coordinates scaled to pixels.

    Every output value depends on the picture, so a decoder reading the wrong column or scale would notice.
    """
    count = int(np.prod(out_shape))
    rng = np.random.default_rng(1)
    scale = np.ones(out_shape, np.float32)
    index: list[slice | list[int]] = [slice(None)] * 3
    index[box_axis] = box_rows
    scale[tuple(index)] = SIZE
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.02, (3, count)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(0, 1.5, count).astype(np.float32), "b"),
        numpy_helper.from_array(np.array(out_shape, np.int64), "shape"),
        numpy_helper.from_array(scale, "scale"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["mean", "w"], ["mixed"]),
        helper.make_node("Add", ["mixed", "b"], ["biased"]),
        helper.make_node("Reshape", ["biased", "shape"], ["flat"]),
        helper.make_node("Sigmoid", ["flat"], ["unit"]),
        helper.make_node("Mul", ["unit", "scale"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in metadata.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


ULTRALYTICS = {"author": "Ultralytics", "names": repr(NAMES), "imgsz": f"[{SIZE}, {SIZE}]", "stride": "32"}


@pytest.fixture
def yolov8_file(tmp_path: Path) -> Path:
    path = tmp_path / "export" / "best.onnx"
    path.parent.mkdir()
    build(path, [1, 4 + len(NAMES), CELLS], [0, 1, 2, 3], 1, ULTRALYTICS)
    return path


def shelf_config(tmp_path: Path, model: Path) -> Path:
    config = {
        "device": {"site": "s", "id": "d"},
        "mqtt": {"host": "127.0.0.1", "port": 1883},
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "pipelines": [
            {
                "name": "shelf",
                "source": {"kind": "folder", "path": str(tmp_path)},
                "model": {"path": str(model)},
                "task": {
                    "kind": "shelf",
                    "zones": [{"name": "a", "polygon": [[0, 0], [1, 0], [1, 1]]}],
                    "coordinates": "normalized",
                },
            }
        ],
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_ultralytics_export_imports_with_its_names_and_runs_in_the_shelf_task(
    yolov8_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "models" / "my-shelf"
    assert main([str(yolov8_file), "--task", "shelf", "--out", str(out)]) == 0
    assert "decoder yolov8, 3 label(s)" in capsys.readouterr().out
    manifest = load_manifest(out)
    assert (manifest.decoder, manifest.labels, manifest.name) == ("yolov8", ["cola", "water", "juice"], "my-shelf")
    spec = manifest.inputs[0]
    assert (spec.layout, spec.color, spec.shape, round(spec.scale * 255, 6)) == ("NCHW", "RGB", [1, 3, 64, 64], 1.0)
    assert not manifest.params.get("normalized_boxes")
    check_config(shelf_config(tmp_path, out))  # edge-agent check accepts the folder
    task_config = ShelfTaskConfig.model_validate(
        {
            "kind": "shelf",
            "coordinates": "normalized",
            "zones": [{"name": "a", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
        }
    )
    task = ShelfTask(task_config, load_model(out, None, OnnxRuntimeConfig()), TaskContext("p", "s", "d"))
    frame = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    item = Item(frame, 0.0, "cam", 7)
    result = task.logic(task.decode(task.run(task.preprocess([item])), [item])[0], item)
    assert result.data is not None and result.data.frame_id == "cam-7"  # type: ignore[union-attr]


def test_yolo26_end_to_end_and_yolox_layouts_are_recognised(tmp_path: Path) -> None:
    e2e = tmp_path / "e2e" / "yolo26n.onnx"
    e2e.parent.mkdir()
    build(e2e, [1, 300, 6], [0, 1, 2, 3], 2, {**ULTRALYTICS, "end2end": "True"})
    assert main([str(e2e), "--task", "shelf"]) == 0
    assert load_manifest(e2e.parent).decoder == "yolo_e2e"
    yolox = tmp_path / "yolox" / "yolox_s.onnx"
    yolox.parent.mkdir()
    build(yolox, [1, CELLS, 5 + 2], [], 2, {})  # YOLOX: cell offsets and log sizes, nothing scaled
    assert main([str(yolox), "--task", "shelf", "--labels", "a,b"]) == 0
    manifest = load_manifest(yolox.parent)
    assert (manifest.decoder, manifest.inputs[0].color, manifest.inputs[0].scale) == ("yolox", "BGR", 1.0)


@pytest.mark.parametrize(
    ("shape", "labels", "message"),
    [
        ([1, 7, 13], None, "match no layout edge-agent knows"),
        ([1, 4 + 3, CELLS], "a,b", "--labels: 2 label(s) for best.onnx, whose output has 3 classes"),
    ],
)
def test_bad_input_is_one_line_naming_the_file_or_field(
    tmp_path: Path, shape: list[int], labels: str | None, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "best.onnx"
    build(path, shape, [0], 1, ULTRALYTICS if labels is None else {})
    argv = [str(path), "--task", "shelf"] + (["--labels", labels] if labels else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "manifest.yaml").exists()


def test_the_shipped_coco_manifest_is_what_import_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's worked example, re-run: the COCO YOLOX-Nano imported with its label file."""
    repo = Path(__file__).resolve().parents[2]
    shipped = repo / "models" / "pretrained" / "coco-yolox-nano"
    demo = repo / "examples" / "data" / "shelf_demo" / "frame_000.jpg"
    argv = [str(shipped / "yolox_nano.onnx"), "--task", "shelf", "--labels", str(shipped / "labels.txt")]
    assert main([*argv, "--out", str(tmp_path / "coco"), "--image", str(demo)]) == 0
    found = int(capsys.readouterr().out.split("the decoder found ")[1].split()[0])
    assert found > 0
    ours, theirs = load_manifest(tmp_path / "coco"), load_manifest(shipped)
    assert (ours.decoder, ours.labels, ours.inputs, ours.files) == (
        theirs.decoder,
        theirs.labels,
        theirs.inputs,
        theirs.files,
    )
    assert theirs.labels[39] == "bottle"


def test_count_labels_counts_only_some_classes_of_a_coco_detector() -> None:
    repo = Path(__file__).resolve().parents[2]
    shipped = repo / "models" / "pretrained" / "coco-yolox-nano"
    frame = cv2.imread(str(repo / "examples" / "data" / "shelf_demo" / "frame_000.jpg"))
    zone = {"name": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}

    def detections(**extra: object) -> np.ndarray:
        config = ShelfTaskConfig.model_validate(
            {"kind": "shelf", "coordinates": "normalized", "zones": [zone], **extra}
        )
        task = ShelfTask(config, load_model(shipped, None, OnnxRuntimeConfig()), TaskContext("p", "s", "d"))
        item = Item(frame, 0.0, "cam", 0)
        return task.decode(task.run(task.preprocess([item])), [item])[0].detections.classes

    everything = detections(score_threshold=0.1)
    fruit = detections(score_threshold=0.1, count_labels=["apple", "orange"])  # COCO ids 47 and 49
    assert set(fruit.tolist()) <= {47, 49} and len(fruit) == int(np.isin(everything, [47, 49]).sum())
    assert 0 < len(fruit) < len(everything), (everything, fruit)
    with pytest.raises(ModelError, match=r"task.count_labels: bottel not among the labels of model 'coco-yolox-nano'"):
        detections(count_labels=["bottel"])
