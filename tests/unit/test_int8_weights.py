"""int8 ONNX weights stay within 7 bits, in every shipped file and from both quantizers.

x86 CPUs without VNNI (AVX2 only) multiply uint8 activations by int8 weights into 16-bit pair sums: with
8-bit weights (up to 127) a pair reaches 2 x 255 x 127 and saturates, so the int8 model silently drifts
from fp32 on such machines (a one-channel sensor model put 50% of normal windows over its 0.99 likelihood).
With 7-bit weights (up to 64, onnxruntime's reduce_range) a pair stays below 32,767.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from edge_agent.runtime.quantize import quantize_onnx as quantize_image_model
from edge_agent.tasks.sensor.export import INPUT_NAME
from edge_agent.tasks.sensor.export import quantize_onnx as quantize_sensor_model

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(ROOT.glob("models/*/*int8*.onnx"))


def largest_weight(path: Path) -> int:
    """The largest |value| among the int8 initializers that feed a DequantizeLinear (the quantized weights)."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    values = [inits[n.input[0]] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    weights = [v for v in values if v.dtype == np.int8 and v.size > 1]
    assert weights, f"{path}: no int8 weights found"
    return max(int(np.abs(w.astype(np.int32)).max()) for w in weights)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.parent.name + "/" + p.name for p in SHIPPED])
def test_shipped_int8_onnx_files_have_7_bit_weights(path: Path) -> None:
    assert largest_weight(path) <= 64


def dense_model(path: Path) -> Path:
    """windows [N, 8] -> MatMul with wide-ranged weights -> y [N, 8] (the sensor export's input name)."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(0, 3, (8, 8)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", [INPUT_NAME, "w"], ["y"])], "dense",
        [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, [None, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 8])], [weight],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_both_quantizers_write_7_bit_weights(tmp_path: Path) -> None:
    calibration = np.random.default_rng(1).normal(0, 1, (64, 8)).astype(np.float32)
    source = dense_model(tmp_path / "dense.onnx")
    quantize_sensor_model(source, tmp_path / "sensor.onnx", calibration)
    quantize_image_model(source, tmp_path / "image.onnx", [calibration[i : i + 1] for i in range(16)], INPUT_NAME)
    assert largest_weight(tmp_path / "sensor.onnx") <= 64
    assert largest_weight(tmp_path / "image.onnx") <= 64
