"""Gives the shelf detector's ONNX files (fp32 and int8) a free input height and width, so that a frame is fitted
into 416 pixels on its long side and padded only up to the next multiple of 32 on the short side (a 1280x720 frame:
416x256 instead of 416x416, 38% fewer pixels through the network) instead of into a 416x416 square.

The network is convolutional all the way (its two upsampling Resize nodes take scales, not sizes); only the export's
tail was fixed to 416x416: the flattening Reshapes name the cell count of each level, and the box decoding adds a
constant grid of cell positions and multiplies by a constant column of strides. This script (graph surgery with the
`onnx` package, no retraining and no requantization: the int8 file's quantized convolutions are the same) rewrites
exactly those nodes:

- each level's Reshape to [batch, 4, cells] / [batch, cells] becomes [1, 4, -1] / [1, -1];
- the grid and stride constants become the same values computed from the shape of each level's head output
  (Shape -> Range -> Expand), cell x and cell y in the order torch's meshgrid gave them;
- boxes are divided by the input's width and height (x and w by the width, y and h by the height) instead of by
  416, so that they stay "divided by the input size", the convention the manifest's `normalized_boxes` names.

At 416x416 the rewritten graph gives the original outputs bit for bit (checked here before anything is written).
The manifest beside the files gets their new sha256 and an output of [1, 5, null] (the cell count follows the input).
The TFLite file keeps its fixed 416x416 input: the shelf task pads frames to the whole size for such a file.

    python models/build/shelf/dynamic_input.py models/shelf-detector/model.onnx models/shelf-detector/model.int8.onnx
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edge_agent.runtime.manifest import MANIFEST_NAME, load_manifest, sha256_file, write_manifest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tflite_yolox import drop_dead_nodes

LEVELS = (
    ("/net/body/Conv_327/Conv_output_0", 8),
    ("/net/body/Conv_360/Conv_output_0", 16),
    ("/net/body/Conv_393/Conv_output_0", 32),
)
BOX_RESHAPES = ("/net/Constant_output_0", "/net/Constant_1_output_0", "/net/Constant_2_output_0")
SCORE_RESHAPES = ("/net/Constant_3_output_0", "/net/Constant_4_output_0", "/net/Constant_5_output_0")
GRID = "/net/Constant_10_output_0"
STRIDES = ("/net/Constant_11_output_0", "/net/Constant_16_output_0")
DIVS = ("/net/Div", "/net/Div_1")  # centres and sizes divided by 416


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], name=name + "/node", value=numpy_helper.from_array(value, name))


def _level_nodes(source: str, stride: int, tag: str) -> tuple[list[onnx.NodeProto], str, str]:
    """Nodes computing one level's cell positions [h*w, 2] (x, y) and strides [h*w, 1] from its head output."""
    p = f"/dynamic/{tag}/"
    n = [helper.make_node("Shape", [source], [p + "shape"], name=p + "Shape")]
    for axis, dim in ((2, "h"), (3, "w")):
        n.append(
            helper.make_node("Gather", [p + "shape", "/dynamic/axis" + str(axis)], [p + dim], name=p + dim, axis=0)
        )
        n.append(
            helper.make_node(
                "Range", ["/dynamic/zero", p + dim, "/dynamic/one"], [p + dim + "_range"], name=p + dim + "_range"
            )
        )
        n.append(
            helper.make_node("Cast", [p + dim + "_range"], [p + dim + "_f"], name=p + dim + "_f", to=TensorProto.FLOAT)
        )
        n.append(helper.make_node("Unsqueeze", [p + dim, "/dynamic/axes0"], [p + dim + "_1"], name=p + dim + "_1"))
    n.append(helper.make_node("Concat", [p + "h_1", p + "w_1"], [p + "hw"], name=p + "hw", axis=0))
    n.append(helper.make_node("Unsqueeze", [p + "w_f", "/dynamic/axes0"], [p + "xs_row"], name=p + "xs_row"))  # [1, w]
    n.append(helper.make_node("Unsqueeze", [p + "h_f", "/dynamic/axes1"], [p + "ys_col"], name=p + "ys_col"))  # [h, 1]
    for axis in ("xs", "ys"):
        src = p + ("xs_row" if axis == "xs" else "ys_col")
        n.append(helper.make_node("Expand", [src, p + "hw"], [p + axis + "_hw"], name=p + axis + "_hw"))
        n.append(helper.make_node("Reshape", [p + axis + "_hw", "/dynamic/column"], [p + axis], name=p + axis))
    n.append(helper.make_node("Concat", [p + "xs", p + "ys"], [p + "grid"], name=p + "grid", axis=1))
    n.append(_const(p + "stride_value", np.array([[float(stride)]], np.float32)))
    n.append(helper.make_node("Mul", [p + "xs", "/dynamic/zero_f"], [p + "zeros"], name=p + "zeros"))
    n.append(helper.make_node("Add", [p + "zeros", p + "stride_value"], [p + "stride"], name=p + "stride"))
    return n, p + "grid", p + "stride"


def _shared_constants() -> list[onnx.NodeProto]:
    return [
        _const("/dynamic/axis2", np.array(2, np.int64)),
        _const("/dynamic/axis3", np.array(3, np.int64)),
        _const("/dynamic/zero", np.array(0, np.int64)),
        _const("/dynamic/one", np.array(1, np.int64)),
        _const("/dynamic/zero_f", np.array(0.0, np.float32)),
        _const("/dynamic/column", np.array([-1, 1], np.int64)),
        _const("/dynamic/axes0", np.array([0], np.int64)),
        _const("/dynamic/axes1", np.array([1], np.int64)),
    ]


def _constant(graph: onnx.GraphProto, name: str) -> onnx.TensorProto:
    """The tensor of the Constant node or initializer that holds `name` (quantization turns some constants into
    initializers)."""
    for node in graph.node:
        if node.op_type == "Constant" and list(node.output) == [name]:
            return node.attribute[0].t
    for init in graph.initializer:
        if init.name == name:
            return init
    raise SystemExit(f"{name}: not in the graph; is this the shelf detector's export?")


def _in_layout(computed: str, shape: list[int], name: str) -> list[onnx.NodeProto]:
    """`computed` ([cells, k]) in the layout the replaced constant had: [cells, k] as exported, or [1, k, cells]
    where the int8 build's optimiser moved the transpose in front of the box decoding."""
    out = name + "/dynamic"
    if len(shape) == 2:
        return [helper.make_node("Identity", [computed], [out], name=out)]
    if len(shape) == 3 and shape[0] == 1 and shape[1] in (1, 2):
        return [
            helper.make_node("Transpose", [computed], [out + "_t"], name=out + "_t", perm=[1, 0]),
            helper.make_node("Unsqueeze", [out + "_t", "/dynamic/axes0"], [out], name=out),
        ]
    raise SystemExit(f"{name}: unexpected shape {shape}; is this the shelf detector's export?")


def _divisor(grid_shape: list[int]) -> list[onnx.NodeProto]:
    """The input's [width, height] (NHWC), shaped to divide boxes laid out as the grid constant was."""
    nodes = [
        helper.make_node("Shape", ["images"], ["/dynamic/image_shape"], name="/dynamic/image_shape"),
        _const("/dynamic/wh_axes", np.array([2, 1], np.int64)),
        helper.make_node(
            "Gather", ["/dynamic/image_shape", "/dynamic/wh_axes"], ["/dynamic/wh"], name="/dynamic/wh", axis=0
        ),
    ]
    flat = len(grid_shape) == 2  # [cells, 2]: the cast [width, height] divides as it is
    cast = "/dynamic/size" if flat else "/dynamic/wh_f"
    nodes.append(helper.make_node("Cast", ["/dynamic/wh"], [cast], name=cast, to=TensorProto.FLOAT))
    if flat:
        return nodes
    nodes.append(_const("/dynamic/wh_shape", np.array([1, 2, 1], np.int64)))
    nodes.append(
        helper.make_node("Reshape", ["/dynamic/wh_f", "/dynamic/wh_shape"], ["/dynamic/size"], name="/dynamic/size")
    )
    return nodes


def _rewire(graph: onnx.GraphProto, old: str, new: str) -> None:
    uses = 0
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
                uses += 1
    if not uses:
        raise SystemExit(f"{old}: nothing reads it; is this the shelf detector's export?")


def make_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    for name in BOX_RESHAPES:
        _constant(graph, name).CopyFrom(numpy_helper.from_array(np.array([1, 4, -1], np.int64), name))
    for name in SCORE_RESHAPES:
        _constant(graph, name).CopyFrom(numpy_helper.from_array(np.array([1, -1], np.int64), name))
    nodes, grids, strides = _shared_constants(), [], []
    for tag, (source, stride) in enumerate(LEVELS):
        level, grid, column = _level_nodes(source, stride, f"level{tag}")
        nodes += level
        grids.append(grid)
        strides.append(column)
    nodes.append(helper.make_node("Concat", grids, ["/dynamic/grid"], name="/dynamic/grid", axis=0))
    nodes.append(helper.make_node("Concat", strides, ["/dynamic/strides"], name="/dynamic/strides", axis=0))
    for name, computed in ((GRID, "/dynamic/grid"), *((name, "/dynamic/strides") for name in STRIDES)):
        nodes += _in_layout(computed, list(_constant(graph, name).dims), name)
        _rewire(graph, name, name + "/dynamic")
    nodes += _divisor(list(_constant(graph, GRID).dims))
    for node in graph.node:
        if node.op_type == "Div" and node.name in DIVS:
            node.input[1] = "/dynamic/size"
    graph.node.extend(nodes)
    _topological_sort(graph)
    image = graph.input[0].type.tensor_type.shape
    image.dim[1].Clear()
    image.dim[1].dim_param = "height"
    image.dim[2].Clear()
    image.dim[2].dim_param = "width"
    cells = graph.output[0].type.tensor_type.shape.dim[2]
    cells.Clear()
    cells.dim_param = "cells"
    del graph.value_info[:]  # shapes recorded for 416x416; onnxruntime infers them per run
    drop_dead_nodes(graph)  # the old grid and stride constants (3549 rows each)
    onnx.checker.check_model(model)
    return model


def _topological_sort(graph: onnx.GraphProto) -> None:
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise SystemExit("the rewritten graph has a cycle or a dangling input")
        for node in ready:
            ordered.append(node)
            known.update(node.output)
        pending = [n for n in pending if n not in ready]
    del graph.node[:]
    graph.node.extend(ordered)


def _run(model: onnx.ModelProto, image: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    out: np.ndarray = session.run(None, {"images": image})[0]
    return out


def check(before: onnx.ModelProto, after: onnx.ModelProto, path: Path) -> None:
    """Same outputs at 416x416; at 256x416 the cells of a 416x256 grid, with the right positions."""
    image = np.random.default_rng(0).uniform(0, 255, (1, 416, 416, 3)).astype(np.float32)
    error = float(np.abs(_run(before, image) - _run(after, image)).max())
    if error > 1e-6:
        raise SystemExit(f"{path}: the rewritten graph differs at 416x416 by {error}")
    wide = _run(after, image[:, :256])
    if wide.shape != (1, 5, 52 * 32 + 26 * 16 + 13 * 8):
        raise SystemExit(f"{path}: a 256x416 input gave shape {wide.shape}")
    centre = wide[0, :2, : 52 * 32] * np.array([[416], [256]], np.float32)  # stride-8 cells, input pixels
    cells = np.stack(np.meshgrid(np.arange(52), np.arange(32)), 0).reshape(2, -1) * 8
    if not (np.abs(centre - cells - 4).max() < 8 * 3):  # YOLOX offsets stay within a few cells of their own
        raise SystemExit(f"{path}: at 256x416 the stride-8 boxes are not centred near their own cells")
    print(f"{path}: same outputs at 416x416 (max |diff| {error:.1e}); 256x416 gives {wide.shape[2]} cells")


def record(path: Path) -> None:
    """The manifest beside `path`, if any: the file's new sha256, and an output whose cell count is free."""
    if not (path.parent / MANIFEST_NAME).is_file():
        return
    manifest = load_manifest(path.parent)
    files = {
        key: entry.model_copy(update={"sha256": sha256_file(path)}) if entry.path == path.name else entry
        for key, entry in manifest.files.items()
    }
    outputs = [manifest.outputs[0].model_copy(update={"shape": [1, 5, None]}), *manifest.outputs[1:]]
    write_manifest(path.parent, manifest.model_copy(update={"files": files, "outputs": outputs}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", type=Path, nargs="+", help="ONNX files to rewrite in place")
    args = parser.parse_args()
    for path in args.models:
        before = onnx.load(str(path))
        after = make_dynamic(onnx.load(str(path)))
        check(before, after, path)
        onnx.save(after, str(path))
        record(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
