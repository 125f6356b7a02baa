"""Export of the trained defect net: fp32 ONNX, static QDQ int8 ONNX, full-integer int8 TFLite (fit only).

The TFLite graph is rebuilt op for op in TensorFlow from the net's BatchNorm-folded weights, so no
ONNX-to-TF converter is needed; both files take NCHW input and return the same two outputs.
"""

from __future__ import annotations

import importlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import RuntimeUnavailableError
from edge_agent.tasks.defect.net import LAYERS, SCORE_POOL, build_export_wrapper, coord_grid, import_torch

logger = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAMES = ("anomaly_map", "score")


def export_onnx(net: Any, channels: int, size: tuple[int, int], path: Path) -> None:
    torch = import_torch()
    wrapper = build_export_wrapper(net, size[1], size[0])
    dummy = torch.zeros(1, channels, size[1], size[0])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation on every call
        torch.onnx.export(
            wrapper, (dummy,), str(path), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            opset_version=17, dynamo=False, external_data=False,
        )  # fmt: skip


def quantize_onnx(fp32: Path, int8: Path, calibration: np.ndarray) -> None:
    """Static QDQ int8 (U8S8, per-channel 7-bit weights: see edge_agent.runtime.quantize), one image a batch."""
    from edge_agent.runtime.quantize import quantize_onnx as quantize

    quantize(fp32, int8, [item[None] for item in calibration], INPUT_NAME)


def folded_weights(net: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Conv weights (HWIO) and biases with BatchNorm folded in, keyed by layer name."""
    out = {}
    blocks = net.blocks
    for name, *_ in LAYERS:
        conv, bn = blocks[name][0], blocks[name][1]
        w = conv.weight.detach().numpy()
        g = (bn.weight / (bn.running_var + bn.eps).sqrt()).detach().numpy()
        bias = bn.bias.detach().numpy() - bn.running_mean.detach().numpy() * g
        out[name] = ((w * g[:, None, None, None]).transpose(2, 3, 1, 0), bias)
    for name in ("lat", "head"):
        conv = blocks[name]
        out[name] = (conv.weight.detach().numpy().transpose(2, 3, 1, 0), conv.bias.detach().numpy())
    return out


def _import_tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return importlib.import_module("tensorflow")
    except ImportError as exc:
        raise RuntimeUnavailableError(
            "writing the TFLite model needs tensorflow: pip install 'edge-agent[train]'"
        ) from exc


def _tf_forward(tf: Any, weights: dict[str, tuple[np.ndarray, np.ndarray]], x: Any) -> tuple[Any, Any]:
    """The same graph as net.build_net + build_export_wrapper, NHWC inside, NCHW at both ends."""

    def conv(name: str, t: Any, stride: int = 1, dil: int = 1, relu: bool = True) -> Any:
        w, b = weights[name]
        k = w.shape[0]
        if k > 1:  # torch pads symmetrically; TF "SAME" would pad bottom/right only at stride 2
            t = tf.pad(t, [[0, 0], [dil, dil], [dil, dil], [0, 0]])
        y = tf.nn.conv2d(t, tf.constant(w), strides=stride, padding="VALID", dilations=dil) + tf.constant(b)
        return tf.nn.relu(y) if relu else y

    spec = {name: (stride, dil) for name, _i, _o, stride, dil in LAYERS}
    t = tf.transpose(x, [0, 2, 3, 1])
    coords = coord_grid(int(x.shape[2]), int(x.shape[3])).transpose(1, 2, 0)[None]
    t = tf.concat([t, tf.constant(coords)], axis=3)
    for name in ("s1", "s2", "s3"):
        t = conv(name, t, *spec[name])
    f4 = t
    for name in ("s4", "s5", "s6"):
        t = conv(name, t, *spec[name])
    lat = conv("lat", t, relu=False)
    up = tf.image.resize(lat, tf.shape(f4)[1:3], method="nearest")  # exact 2x: same cells as torch
    logits = conv("head", conv("d1", f4 + up, *spec["d1"]), relu=False)
    amap = tf.sigmoid(logits)
    pooled = tf.nn.avg_pool2d(amap, SCORE_POOL, 1, "VALID")
    score = tf.reduce_max(pooled, axis=[1, 2])
    return tf.transpose(amap, [0, 3, 1, 2]), score


def export_tflite(net: Any, channels: int, size: tuple[int, int], path: Path, calibration: np.ndarray) -> None:
    """Full-integer int8 TFLite (float input and output, quantized inside) from a representative set."""
    tf = _import_tf()
    weights = folded_weights(net)
    shape = [1, channels, size[1], size[0]]

    def forward(x: Any) -> dict[str, Any]:
        amap, score = _tf_forward(tf, weights, x)
        return {OUTPUT_NAMES[0]: amap, OUTPUT_NAMES[1]: score}

    model = tf.function(forward, input_signature=[tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)])

    def representative() -> Iterator[list[np.ndarray]]:
        for item in calibration:
            yield [item[None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "statistics for quantized inputs": the input stays float on purpose
        path.write_bytes(converter.convert())
