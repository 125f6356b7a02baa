"""int8 TFLite of the fine-tuned YOLOX shelf detector, calibrated on the same training shelves as the int8 ONNX.

    python models/build/shelf/tflite_yolox.py --onnx models/shelf-detector/model.onnx \
        --calib /tmp/shelf-yolox/export/calib.npy --work /tmp/shelf-yolox/tf \
        --out /tmp/shelf-yolox/model.int8.tflite

Runs onnx2tf (TensorFlow, build venv only) to a float SavedModel, then TensorFlow's converter in two steps,
calibrate and quantize, with the activation ranges set in between. Float input and output, int8 weights and
activations inside except where stated below.

The graph handed to onnx2tf is prepared first, each step checked against the source with onnxruntime:
- the shipped NHWC file (a Transpose to NCHW right after `images`) loses that Transpose and takes NCHW input
  (onnx2tf gives the TFLite an NHWC input again); an NCHW export is taken as it is;
- YOLOX's Focus (strided Slices, which onnx2tf mistranslates) becomes one fixed 2x2 stride-2 Conv;
- the SiLU floor: each convolution that feeds a SiLU (x * sigmoid(x)) becomes ReLU(conv + f) - f, that is
  max(conv, -f), f = 8 (`--silu-floor`). Those convolutions reach -900 while SiLU(-8) = -0.003; with the ReLU
  fused into the convolution the converter quantizes that tensor on [0, max + f] instead of [-900, max].

Activation ranges (`--ranges mean`): the mean over the calibration frames of each frame's min and max, as the
int8 ONNX does, not TensorFlow's min / max over all frames; the input (and the Focus output, the same pixels)
is set to the full pixel range 0..255 (`--input-range`), so bright real photos do not saturate it.

Kept float (TensorFlow's selective quantization, by output tensor name): the head convolutions and the box
decoding after them (exp() of the box sizes, objectness logits), and every operator at stride <= 4 (the stem
and the first backbone stage, 208x208 and 104x104; `--float-stride`), whose wide, heavy-tailed activations
(the stem's reach 400) cost the most accuracy in int8.

2.2.0, 60 held-out frames a set (bench.shelf_accuracy), fp32 / this file: plain mAP 0.988 / 0.988, count MAE
0.066 / 0.071; hard 0.962 / 0.964, 0.161 / 0.152; empty: 0.00 / 0.00 boxes per real photo; 5.4 ms against
6.8 ms fp32 (bare, 1 thread). Other choices, same sets: the stride-4 stage in int8 too, plain mAP 0.987 but
MAE 0.089 (3.7 ms); that and the decoding in int8, plain 0.972, hard 0.925; TensorFlow's min / max ranges
instead of the mean (decoding float, stride-4 stage int8), plain 0.941, hard 0.905.

Build venv (never the project's): tensorflow-cpu 2.21.0, tf-keras, onnx2tf 1.28.8, onnx, onnxruntime,
onnx-graphsurgeon, sng4onnx, psutil, ai-edge-litert.

onnx2tf fetches sample pictures from the network for its own output check; here it is handed the calibration
frames instead (nothing is downloaded).
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

INPUT = "images"
SIZE = 416
TOWER_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "LOGISTIC", "MUL", "ADD", "PAD")
TOWER_CONVS = 5  # YOLOX-Nano, per head: a 1x1 stem and two depthwise-separable blocks


def is_nhwc(model: onnx.ModelProto) -> bool:
    """True for the shipped layout: `images` [1, H, W, 3] read only by a Transpose to NCHW."""
    users = [n for n in model.graph.node if INPUT in n.input]
    return len(users) == 1 and users[0].op_type == "Transpose" and _perm(users[0]) == [0, 3, 1, 2]


def _perm(node: onnx.NodeProto) -> list[int]:
    return [int(v) for a in node.attribute if a.name == "perm" for v in a.ints]


def nchw_from_nhwc(model: onnx.ModelProto) -> None:
    """Drop the leading Transpose: its readers take `images` directly, declared [1, 3, H, W]."""
    graph = model.graph
    transpose = next(n for n in graph.node if INPUT in n.input)
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name == transpose.output[0]:
                node.input[k] = INPUT
    graph.node.remove(transpose)
    dims = graph.input[0].type.tensor_type.shape.dim
    n, h, w, c = (d.dim_value for d in dims)
    for dim, value in zip(dims, (n, c, h, w)):
        dim.dim_value = value


def focus_as_conv(model: onnx.ModelProto) -> None:
    """YOLOX's Focus (four strided Slices + Concat, space-to-depth) as one fixed 2x2 stride-2 Conv.

    onnx2tf mistranslates the strided Slices of an NCHW graph; the Conv is the same arithmetic.
    """
    graph = model.graph
    concat = next(n for n in graph.node if n.op_type == "Concat" and _fed_by_input_slices(graph, n))
    weight = np.zeros((12, 3, 2, 2), np.float32)
    for k, (dy, dx) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):  # top-left, bottom-left, top-right, bottom-right
        for c in range(3):
            weight[k * 3 + c, c, dy, dx] = 1.0
    graph.initializer.append(numpy_helper.from_array(weight, "focus_weight"))
    conv = helper.make_node("Conv", [INPUT, "focus_weight"], list(concat.output), kernel_shape=[2, 2], strides=[2, 2])
    index = list(graph.node).index(concat)
    graph.node.remove(concat)
    graph.node.insert(index, conv)
    drop_dead_nodes(graph)


def _fed_by_input_slices(graph: onnx.GraphProto, node: onnx.NodeProto) -> bool:
    producers = {o: n for n in graph.node for o in n.output}
    for first in node.input:
        name, step = first, producers.get(first)
        while step is not None and step.op_type == "Slice":
            name = step.input[0]
            step = producers.get(name)
        if name != INPUT:
            return False
    return len(node.input) == 4


def drop_dead_nodes(graph: onnx.GraphProto) -> None:
    """Nodes whose outputs nothing reads, and initializers no node reads (also used by dynamic_input.py)."""
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    read = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in read]:
        graph.initializer.remove(init)


def silu_inputs(graph: onnx.GraphProto) -> list[str]:
    """Tensors x read by a Sigmoid s and by a Mul(x, s): the inputs of the SiLU activations."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    found = []
    for name, users in readers.items():
        sigmoids = {u.output[0] for u in users if u.op_type == "Sigmoid"}
        if any(u.op_type == "Mul" and len(set(u.input) & sigmoids) == 1 and name in u.input for u in users):
            found.append(name)
    return found


def silu_floor(model: onnx.ModelProto, floor: float) -> int:
    """Each SiLU input x = Conv(...) + b becomes ReLU(Conv(...) + b + floor) - floor, i.e. max(x, -floor).

    Returns how many SiLU inputs were floored; raises if one is not the output of a Conv with its own bias.
    """
    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    inits = {i.name: i for i in graph.initializer}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    shift = numpy_helper.from_array(np.array(-floor, np.float32), "silu_floor_shift")
    graph.initializer.append(shift)
    targets = silu_inputs(graph)
    for name in targets:
        conv = producers.get(name)
        if conv is None or conv.op_type != "Conv" or len(conv.input) < 3 or uses.get(conv.input[2]) != 1:
            raise SystemExit(f"SiLU input {name} is not a Conv output with its own bias")
        bias = inits[conv.input[2]]
        bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) + np.float32(floor), bias.name))
        raw, relu = f"{name}_pre_floor", f"{name}_floor_relu"
        conv.output[0] = raw
        index = list(graph.node).index(conv)
        graph.node.insert(index + 1, helper.make_node("Relu", [raw], [relu], name=f"{conv.name}_floor_relu"))
        graph.node.insert(index + 2, helper.make_node("Add", [relu, shift.name], [name], name=f"{conv.name}_floor"))
    return len(targets)


def _run(path: Path, frame: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {INPUT: frame})[0])


def check_against(source: Path, prepared: Path, frames: np.ndarray, atol: float, source_nhwc: bool) -> float:
    """Largest |output difference| of the prepared NCHW graph against the source on NHWC `frames`."""
    worst = 0.0
    for frame in frames:
        want = _run(source, frame[None] if source_nhwc else frame.transpose(2, 0, 1)[None])
        got = _run(prepared, frame.transpose(2, 0, 1)[None])
        worst = max(worst, float(np.abs(got - want).max()))
    if worst > atol:
        raise SystemExit(f"{prepared.name}: outputs differ from {source.name} by {worst:.4g} (> {atol})")
    return worst


def prepare(source: Path, work: Path, frames: np.ndarray, floor: float) -> Path:
    """The graph handed to onnx2tf: NCHW, the Focus as a Conv, SiLU inputs floored; each step checked."""
    model = onnx.load(str(source))
    nhwc = is_nhwc(model)
    if nhwc:
        nchw_from_nhwc(model)
    focus_as_conv(model)
    onnx.checker.check_model(model)
    exact = work / "model_nchw_focus_conv.onnx"
    onnx.save(model, str(exact))
    probe = np.random.default_rng(0).uniform(0, 255, (1, SIZE, SIZE, 3)).astype(np.float32)
    worst = check_against(source, exact, np.concatenate([probe, frames[:2]]), 1e-3, nhwc)
    print(f"{exact.name}: NCHW{' from NHWC' if nhwc else ''}, Focus as Conv, max |diff| {worst:.2e}", flush=True)
    if not floor:
        return exact
    count = silu_floor(model, floor)
    onnx.checker.check_model(model)
    floored = work / "model_nchw_silu_floor.onnx"
    onnx.save(model, str(floored))
    worst = check_against(exact, floored, frames[:4], 0.05, False)
    print(f"{floored.name}: {count} SiLU inputs floored at -{floor:g}, max |diff| {worst:.2e}", flush=True)
    return floored


def calibration_frames(calib: Path) -> np.ndarray:
    """NHWC frames [N, H, W, 3] of the calibration file [N, 1, H, W, 3]."""
    return np.asarray(np.load(calib)[:, 0], dtype=np.float32)


def pixel_tensors(model: bytes) -> list[str]:
    """The input and the output of the Focus convolution (the same pixels rearranged)."""
    ops, names = _operators(model)
    source = next(int(op["inputs"][0]) for op in ops if op["op_name"] == "CONV_2D")
    readers = [op for op in ops if source in [int(t) for t in op["inputs"]]]
    return [names[source]] + [names[int(op["outputs"][0])] for op in readers if op["op_name"] == "CONV_2D"]


def saved_model(prepared: Path, work: Path, frames: np.ndarray) -> Path:
    """onnx2tf's float SavedModel of the prepared graph (NHWC input)."""
    import onnx2tf
    import onnx2tf.onnx2tf as core

    core.download_test_image_data = lambda: frames[:20] / 255.0
    folder = work / "saved_model"
    onnx2tf.convert(
        input_onnx_file_path=str(prepared),
        output_folder_path=str(folder),
        output_signaturedefs=True,
        not_use_onnxsim=True,
        non_verbose=True,
    )
    return folder


def _representative(frames: np.ndarray) -> Any:
    def generate() -> Iterator[list[np.ndarray]]:
        for frame in frames:
            yield [frame[None]]

    return generate


def calibrated(folder: Path, frames: np.ndarray) -> bytes:
    """The float TFLite of the SavedModel with TensorFlow's calibration statistics (min / max over all frames)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(folder))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative(frames)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter._experimental_calibrate_only = True  # the converter's calibrate / quantize split
    return bytes(converter.convert())


def mean_ranges(model: bytes, frames: np.ndarray) -> dict[str, tuple[float, float]]:
    """Per operator output: the mean over `frames` of each frame's min and max (the int8 ONNX's calibration),
    from running the calibrated float model."""
    from ai_edge_litert import interpreter as litert

    interp = litert.Interpreter(
        model_content=model,
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        experimental_preserve_all_tensors=True,
        num_threads=1,
    )
    interp.allocate_tensors()
    names = {int(t["index"]): str(t["name"]) for t in interp.get_tensor_details()}
    outputs = sorted({int(t) for op in interp._get_ops_details() for t in op["outputs"]})
    lows: dict[int, list[float]] = {t: [] for t in outputs}
    highs: dict[int, list[float]] = {t: [] for t in outputs}
    source = interp.get_input_details()[0]["index"]
    for frame in frames:
        interp.set_tensor(source, frame[None])
        interp.invoke()
        for t in outputs:
            value = interp.get_tensor(t)
            if value.dtype == np.float32 and value.size:
                lows[t].append(float(value.min()))
                highs[t].append(float(value.max()))
    return {names[t]: (float(np.mean(lows[t])), float(np.mean(highs[t]))) for t in outputs if lows[t]}


def set_ranges(model: bytes, ranges: dict[str, tuple[float, float]]) -> tuple[bytes, int]:
    """The calibrated model with the min / max of the named tensors replaced; returns it and how many."""
    from tensorflow.lite.tools import flatbuffer_utils

    tree = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    count = 0
    for graph in tree.subgraphs:
        for tensor in graph.tensors:
            name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
            if name in ranges and tensor.quantization is not None and tensor.quantization.min is not None:
                low, high = ranges[name]
                tensor.quantization.min = [min(low, 0.0)]
                tensor.quantization.max = [max(high, 0.0)]
                count += 1
    return bytes(flatbuffer_utils.convert_object_to_bytearray(tree)), count


def quantize(model: bytes, float_nodes: list[str] | None = None) -> bytes:
    """int8 TFLite (float input and output) of a calibrated model; the operators whose output tensors are
    named in `float_nodes` stay float (TensorFlow's selective quantization)."""
    from tensorflow.lite.python import convert

    return bytes(convert.mlir_quantize(model, denylisted_nodes=float_nodes or None))


def _operators(tflite: bytes) -> tuple[list[dict[str, Any]], dict[int, str]]:
    from ai_edge_litert import interpreter as litert

    interp = litert.Interpreter(
        model_content=tflite, experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    names = {int(t["index"]): str(t["name"]) for t in interp.get_tensor_details()}
    return list(interp._get_ops_details()), names  # the interpreter's only operator listing


def early_stages(tflite: bytes, stride: int) -> list[str]:
    """Output tensor names of the operators whose output is at most `stride` times smaller than the input
    (stride 4: the stem and the first backbone stage, 208x208 and 104x104 of a 416 input)."""
    ops, names = _operators(tflite)
    shapes = _shapes(tflite)
    height = shapes[names[int(ops[0]["inputs"][0])]][1]
    found = []
    for op in ops:
        name = names[int(op["outputs"][0])]
        shape = shapes[name]
        if len(shape) == 4 and shape[1] * stride >= height and op["op_name"] not in ("QUANTIZE", "DEQUANTIZE"):
            found.append(name)
    return found


def _shapes(tflite: bytes) -> dict[str, list[int]]:
    from ai_edge_litert import interpreter as litert

    interp = litert.Interpreter(
        model_content=tflite, experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    return {str(t["name"]): [int(d) for d in t["shape"]] for t in interp.get_tensor_details()}


def decode_tail(tflite: bytes, towers: bool = False) -> list[str]:
    """Output tensor names of the head convolutions (those read by a RESHAPE or TRANSPOSE, i.e. leaving the
    network body for the box decoding) and of every operator after them, up to the output; with `towers` also
    the head towers behind them (back through convolutions and SiLUs, TOWER_CONVS convolutions a head)."""
    ops, names = _operators(tflite)
    readers: dict[int, list[int]] = {}
    producers: dict[int, int] = {}
    for k, op in enumerate(ops):
        for t in op["inputs"]:
            readers.setdefault(int(t), []).append(k)
        for t in op["outputs"]:
            producers[int(t)] = k
    heads = [
        k
        for k, op in enumerate(ops)
        if op["op_name"] == "CONV_2D"
        and any(ops[r]["op_name"] in ("RESHAPE", "TRANSPOSE") for r in readers.get(int(op["outputs"][0]), []))
    ]
    tail, frontier = set(heads), list(heads)
    while frontier:
        for t in ops[frontier.pop()]["outputs"]:
            for r in readers.get(int(t), []):
                if r not in tail:
                    tail.add(r)
                    frontier.append(r)
    if towers:
        tail |= _towers(ops, producers, heads)
    skip = ("QUANTIZE", "DEQUANTIZE")
    return [names[int(ops[k]["outputs"][0])] for k in sorted(tail) if ops[k]["op_name"] not in skip]


def _towers(ops: list[dict[str, Any]], producers: dict[int, int], heads: list[int]) -> set[int]:
    """Operators behind each head convolution, back through TOWER_OPS, up to TOWER_CONVS convolutions."""
    found: set[int] = set()
    for head in heads:
        frontier, convs = [int(ops[head]["inputs"][0])], 0
        while frontier and convs < TOWER_CONVS:
            k = producers.get(frontier.pop())
            if k is None or k in found or ops[k]["op_name"] not in TOWER_OPS:
                continue
            found.add(k)
            convs += "CONV" in ops[k]["op_name"]
            frontier.extend(int(t) for t in ops[k]["inputs"] if int(t) in producers)
    return found


def float_operators(model: bytes, args: argparse.Namespace) -> list[str]:
    """Output tensor names of the operators kept float, as the options ask."""
    tail = [] if args.int8_tail else decode_tail(model, args.float_towers)
    early = early_stages(model, args.float_stride) if args.float_stride else []
    print(f"kept float: {len(tail)} head / decoding operators, {len(early)} at stride <= {args.float_stride}")
    return list(dict.fromkeys(tail + early))


def with_ranges(model: bytes, frames: np.ndarray, args: argparse.Namespace) -> bytes:
    """The calibrated model with the activation ranges the options ask for."""
    ranges = mean_ranges(model, frames) if args.ranges == "mean" else {}
    pixels = pixel_tensors(model)
    ranges.update({name: (args.input_range[0], args.input_range[1]) for name in pixels})
    model, count = set_ranges(model, ranges)
    print(f"{count} activation ranges set ({args.ranges}; {', '.join(pixels)}: {args.input_range})", flush=True)
    return model


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", type=Path, required=True, help="model.onnx (NHWC) or an NCHW export")
    parser.add_argument("--calib", type=Path, required=True, help=".npy [N, 1, H, W, 3] float BGR 0..255")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--silu-floor", type=float, default=8.0, help="SiLU inputs clipped below at -this; 0: off")
    parser.add_argument("--input-range", type=float, nargs=2, default=(0.0, 255.0), metavar=("LOW", "HIGH"))
    parser.add_argument(
        "--ranges", choices=("mean", "extreme"), default="mean",
        help="activation ranges: mean of the per-frame min / max, or TensorFlow's min / max over all frames",
    )  # fmt: skip
    parser.add_argument("--int8-tail", action="store_true", help="quantize the head convolutions and decoding too")
    parser.add_argument("--float-towers", action="store_true", help="keep the head towers float as well")
    parser.add_argument(
        "--float-stride", type=int, default=4,
        help="keep float the operators whose output is at most this many times smaller than the input; 0: none",
    )  # fmt: skip
    parser.add_argument("--reuse", action="store_true", help="start from the SavedModel already in --work")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    frames = calibration_frames(args.calib)
    folder = args.work / "saved_model"
    if not (args.reuse and folder.is_dir()):
        prepared = prepare(args.onnx, args.work, frames, args.silu_floor)
        shutil.rmtree(folder, ignore_errors=True)
        folder = saved_model(prepared, args.work, frames)
    model = with_ranges(calibrated(folder, frames), frames, args)
    args.out.write_bytes(quantize(model, float_operators(model, args)))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
