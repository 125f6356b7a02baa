"""Quantization ranges set from the graph: SiLU inputs clipped below, the input at the range pixels can take.

Each rule is checked on a real ONNX file quantized by onnxruntime, against the fp32 file on the same frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_agent.runtime.manifest import InputSpec
from edge_agent.runtime.quant_ranges import input_flow, input_range, silu_inputs
from edge_agent.runtime.quantize import quantize_onnx


def graph_file(path: Path, weights: tuple[float, float], bias: float, silu: bool) -> Path:
    """NHWC [1, 8, 8, 2] -> Transpose -> 1x1 Conv (weights, bias) [-> SiLU as Sigmoid and Mul] -> output."""
    nodes = [
        helper.make_node("Transpose", ["images"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w", "b"], ["conv"]),
    ]
    if silu:
        nodes += [helper.make_node("Sigmoid", ["conv"], ["gate"]), helper.make_node("Mul", ["conv", "gate"], ["out"])]
    else:
        nodes += [helper.make_node("Relu", ["conv"], ["out"])]
    graph = helper.make_graph(
        nodes,
        "probe",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 8, 8, 2])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1, 8, 8])],
        [numpy_helper.from_array(np.array(weights, np.float32).reshape(1, 2, 1, 1), "w"),
         numpy_helper.from_array(np.array([bias], np.float32), "b")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(path))
    return path


def frames(low: float, high: float, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.round(rng.uniform(low, high, (1, 8, 8, 2))).astype(np.float32) for _ in range(count)]  # pixels


def worst_error(fp32: Path, int8: Path, inputs: list[np.ndarray]) -> float:
    want, got = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (fp32, int8))
    return max(float(np.abs(want.run(None, {"images": x})[0] - got.run(None, {"images": x})[0]).max()) for x in inputs)


def test_the_graph_rules_find_silu_inputs_and_what_only_moves_the_input(tmp_path: Path) -> None:
    graph = onnx.load(str(graph_file(tmp_path / "m.onnx", (4.0, 0.0), -1000.0, silu=True))).graph
    assert silu_inputs(graph) == ["conv"]
    assert input_flow(graph, "images") == ["images", "nchw"]
    plain = onnx.load(str(graph_file(tmp_path / "r.onnx", (1.0, 0.0), 0.0, silu=False))).graph
    assert silu_inputs(plain) == []


def test_input_range_follows_the_preprocessing_and_skips_non_images() -> None:
    pixels = InputSpec(name="i", shape=[1, 8, 8, 3], layout="NHWC", color="BGR")
    assert input_range(pixels) == (0.0, 255.0)
    unit = InputSpec(name="i", shape=[1, 3, 8, 8], layout="NCHW", color="RGB", scale=1 / 255, mean=[0.5] * 3,
                     std=[0.5] * 3)  # fmt: skip
    assert input_range(unit) == pytest.approx((-1.0, 1.0))
    assert input_range(InputSpec(name="w", shape=[1, 64, 3], layout="NTC")) is None


def test_a_silu_input_with_a_dead_tail_keeps_its_live_range(tmp_path: Path) -> None:
    # 4a + b/4 - 1050 spans -1050..34 while SiLU only varies over the last 42 of those: with the calibrated
    # range one step of the conv output is 4.25 wide; with the floor at -8 it is 0.16 (both weights and the
    # bias are exact in int8, so the difference is the activation range alone).
    fp32 = graph_file(tmp_path / "silu.onnx", (4.0, 0.25), -1050.0, silu=True)
    calib = frames(0, 255, 16, 1)
    quantize_onnx(fp32, tmp_path / "floor.onnx", calib, "images", preprocess=False)
    quantize_onnx(fp32, tmp_path / "plain.onnx", calib, "images", preprocess=False, silu_floor=None)
    with_floor, without = (worst_error(fp32, tmp_path / f"{n}.onnx", calib) for n in ("floor", "plain"))
    assert with_floor < 0.4 < 1.0 < without, (with_floor, without)


def input_scale(path: Path) -> float:
    model = onnx.load(str(path))
    quantize = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "nchw")
    scales = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return float(scales[quantize.input[1]])


def test_the_input_range_is_what_pixels_can_take_not_what_calibration_showed(tmp_path: Path) -> None:
    # Every later tensor is still calibrated on the frames (the shelf benchmark measures what this buys on real
    # photos brighter than the calibration shelves); the input and its transpose get 0..255, one level a pixel.
    fp32 = graph_file(tmp_path / "relu.onnx", (1.0, 0.0), 0.0, silu=False)
    dark = frames(0, 100, 16, 3)
    quantize_onnx(fp32, tmp_path / "range.onnx", dark, "images", preprocess=False, value_range=(0.0, 255.0))
    quantize_onnx(fp32, tmp_path / "calib.onnx", dark, "images", preprocess=False)
    assert input_scale(tmp_path / "range.onnx") == pytest.approx(1.0)
    assert input_scale(tmp_path / "calib.onnx") == pytest.approx(100 / 255)
