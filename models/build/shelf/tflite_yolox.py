"""int8 TFLite of the fine-tuned YOLOX shelf detector, calibrated on the same training shelves as the int8 ONNX.

    python models/build/shelf/tflite_yolox.py --onnx /tmp/shelf-yolox/export/model_nchw.onnx \
        --calib /tmp/shelf-yolox/export/calib.npy --work /tmp/shelf-yolox/tf \
        --out models/shelf-detector/model.int8.tflite

Runs onnx2tf (TensorFlow, build venv only). Integer-quantized weights and activations with float input and output
(onnx2tf's *_integer_quant file), like the first shelf model's TFLite. onnx2tf fetches sample pictures from the
network for its own output check; here it is handed the calibration frames instead (nothing is downloaded).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np


def focus_as_conv(src: Path, dst: Path) -> None:
    """YOLOX's Focus (four strided Slices + Concat, space-to-depth) as one fixed 2x2 stride-2 Conv.

    onnx2tf mistranslates the strided Slices of an NCHW graph; the Conv is the same arithmetic. The result is
    checked against the original graph with onnxruntime.
    """
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    concat = next(n for n in graph.node if n.op_type == "Concat" and _fed_by_input_slices(graph, n))
    weight = np.zeros((12, 3, 2, 2), np.float32)
    for k, (dy, dx) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):  # top-left, bottom-left, top-right, bottom-right
        for c in range(3):
            weight[k * 3 + c, c, dy, dx] = 1.0
    graph.initializer.append(numpy_helper.from_array(weight, "focus_weight"))
    conv = helper.make_node(
        "Conv", ["images", "focus_weight"], list(concat.output), kernel_shape=[2, 2], strides=[2, 2]
    )
    index = list(graph.node).index(concat)
    graph.node.remove(concat)
    graph.node.insert(index, conv)
    _drop_dead_nodes(graph)
    onnx.save(model, str(dst))
    probe = np.random.default_rng(0).uniform(0, 255, (1, 3, 416, 416)).astype(np.float32)
    want = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"images": probe})[0]
    got = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, {"images": probe})[0]
    if float(np.abs(got - want).max()) > 1e-3:
        raise SystemExit("the Focus rewrite changed the outputs")


def _fed_by_input_slices(graph: object, node: object) -> bool:
    producers = {o: n for n in graph.node for o in n.output}  # type: ignore[attr-defined]
    for first in node.input:  # type: ignore[attr-defined]
        name, step = first, producers.get(first)
        while step is not None and step.op_type == "Slice":
            name = step.input[0]
            step = producers.get(name)
        if name != "images":
            return False
    return len(node.input) == 4  # type: ignore[attr-defined]


def _drop_dead_nodes(graph: object) -> None:
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}  # type: ignore[attr-defined]
        dead = [n for n in graph.node if not any(o in used for o in n.output)]  # type: ignore[attr-defined]
        if not dead:
            return
        for node in dead:
            graph.node.remove(node)  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--onnx", type=Path, required=True, help="the NCHW export (onnx2tf rewrites it in place)")
    parser.add_argument("--calib", type=Path, required=True, help=".npy [N, 1, H, W, 3] float BGR 0..255")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import onnx2tf
    import onnx2tf.onnx2tf as core

    frames = np.load(args.calib)[:, 0].astype(np.float32)
    nhwc = args.work / "calib_nhwc.npy"
    args.work.mkdir(parents=True, exist_ok=True)
    np.save(nhwc, frames)
    core.download_test_image_data = lambda: frames[:20] / 255.0  # type: ignore[attr-defined]
    rewritten = args.work / "model_nchw_focus_conv.onnx"
    focus_as_conv(args.onnx, rewritten)
    onnx2tf.convert(
        input_onnx_file_path=str(rewritten),
        output_folder_path=str(args.work),
        output_integer_quantized_tflite=True,
        custom_input_op_name_np_data_path=[["images", str(nhwc), np.zeros((1, 1, 1, 3)), np.ones((1, 1, 1, 3))]],
        not_use_onnxsim=True,
        non_verbose=True,
    )
    produced = sorted(args.work.glob("*_integer_quant.tflite"))
    produced = [p for p in produced if "full_integer" not in p.name]
    if not produced:
        raise SystemExit(f"onnx2tf wrote no *_integer_quant.tflite in {args.work}")
    shutil.copyfile(produced[0], args.out)
    print(f"wrote {args.out} from {produced[0].name}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
