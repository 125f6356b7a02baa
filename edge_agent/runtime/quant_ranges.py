"""Activation ranges that calibration frames get wrong, set from what the graph computes instead.

Two rules, both exact or harmless by construction:

- **SiLU inputs** (a tensor read by a Sigmoid and by a Mul of itself with that Sigmoid, x * sigmoid(x), the
  activation of YOLOv5/v8/X and EfficientNet): their calibrated range is clipped below at -floor (8 by
  default). SiLU(-8) = -0.0027, so nothing below that changes the activation by more than that, while dead
  channels' tails (the shelf detector had a convolution output reaching -918 with max 45) would otherwise
  spend the 256 levels where they do not matter: its int8 file kept 78% of the fp32 mAP with the calibrated
  range and 99.5% with the floor.
- **The input and what only moves its values** (Transpose, Slice, space-to-depth, Gather, Concat of those):
  the range the input can take (0..255 for raw pixels), not the range the calibration frames happened to show.
  Darker calibration frames (averaged per-frame maximum 191) made bright real photos saturate, and the
  shelf detector's int8 file then saw 1.2 boxes per product-free photo where fp32 saw none.

Works on onnx GraphProto objects (the `onnx` package, extra `quantize`); the daemon never imports this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from edge_agent.runtime.manifest import InputSpec

SILU_FLOOR = 8.0
MOVES_VALUES = frozenset(
    {"Transpose", "Slice", "Concat", "Reshape", "SpaceToDepth", "DepthToSpace", "Gather", "Identity",
     "Squeeze", "Unsqueeze", "Flatten"}
)  # fmt: skip


def silu_inputs(graph: Any) -> list[str]:
    """Tensors x read by a Sigmoid s and by a Mul(x, s): the inputs of SiLU written out as two nodes."""
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    found = []
    for name, nodes in readers.items():
        sigmoids = {n.output[0] for n in nodes if n.op_type == "Sigmoid"}  # sigmoid(x)
        if any(n.op_type == "Mul" and any(i in sigmoids for i in n.input) for n in nodes):  # x * sigmoid(x)
            found.append(name)
    return found


def input_flow(graph: Any, input_name: str) -> list[str]:
    """The input and every tensor computed from it by value-moving nodes only (in graph order)."""
    flow = [input_name]
    for node in graph.node:
        moves = node.op_type in MOVES_VALUES and bool(node.input) and node.input[0] in flow
        if moves and (node.op_type != "Concat" or all(i in flow for i in node.input)):
            flow.extend(node.output)
    return flow


def input_range(spec: InputSpec) -> tuple[float, float] | None:
    """The values a float image input can take after the preprocessor's scale, mean and std (None: not pixels)."""
    if spec.dtype != "float32" or spec.layout not in ("NCHW", "NHWC"):
        return None
    mean = np.asarray(spec.mean or [0.0], np.float64)
    std = np.asarray(spec.std or [1.0], np.float64)
    ends = (np.array([0.0, 255.0])[:, None] * spec.scale - mean) / std
    return float(ends.min()), float(ends.max())


def overrides(
    graph: Any,
    calibrated: Mapping[str, tuple[float, float]],
    input_name: str,
    value_range: tuple[float, float] | None,
    silu_floor: float | None = SILU_FLOOR,
) -> dict[str, list[dict[str, np.float32]]]:
    """onnxruntime TensorQuantOverrides (rmin / rmax) for the two rules of this module."""
    found: dict[str, list[dict[str, np.float32]]] = {}
    if silu_floor is not None:
        for name in silu_inputs(graph):
            low, high = calibrated.get(name, (0.0, 0.0))
            if low < -silu_floor:
                found[name] = [_range(-silu_floor, max(high, 0.0))]
    if value_range is not None:
        for name in input_flow(graph, input_name):
            found[name] = [_range(*value_range)]
    return found


def calibrated_ranges(data: Any, names: Iterable[str]) -> dict[str, tuple[float, float]]:
    """(min, max) per tensor from onnxruntime's TensorsData, for the names it holds."""
    ranges = {}
    for name in names:
        if name in data:
            low, high = data[name].range_value
            ranges[name] = (float(np.min(low)), float(np.max(high)))
    return ranges


def _range(low: float, high: float) -> dict[str, np.float32]:
    return {"rmin": np.float32(low), "rmax": np.float32(high)}
