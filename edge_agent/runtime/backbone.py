"""The pretrained ImageNet backbone: one place that loads it, checks its sha256 and cuts it for a job.

The committed file is Google's uint8 post-training-quantised MobileNetV2 1.0 (TFLite, Apache-2.0,
``models/pretrained/imagenet-mobilenet/``; source and commit in its NOTICE). A job asks for a cut: the
graph up to the feature maps it names, at the input size and channel count it needs, as

- an fp32 ONNX graph (``onnx_cut``): converted with tflite2onnx, its fake-quant pairs removed, cut with
  onnx's extractor, NHWC in and out; a grey input folds the first convolution's three input channels
  into one (exact: a grey pixel feeds R = G = B), so a mono camera is read once, not copied three times;
- a uint8 TFLite file (``tflite_cut``): the original flatbuffer with its operator list shortened and its
  outputs pointed at the cut tensors (the weights are untouched, so it is the pretrained int8 network).

Fitting needs ``onnx`` and ``tflite2onnx`` (extra ``fit``); the daemon never imports this module: it runs
the files a fit wrote into the model folder.
"""

from __future__ import annotations

import importlib
import logging
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import ModelError, RuntimeUnavailableError
from edge_agent.runtime.manifest import sha256_file

PRETRAINED_ROOT = Path(__file__).resolve().parents[2] / "models" / "pretrained"
FIT_HINT = "pip install 'edge-agent[fit]' (onnx, tflite2onnx)"
INPUT_NAME = "image"


@dataclass(frozen=True)
class Backbone:
    """A committed pretrained file and the feature maps a job may cut it at."""

    name: str
    folder: str
    file: str
    sha256: str
    source: str
    licence: str
    # output name -> (TFLite tensor name, stride, channels); the TFLite name is also the ONNX tensor name
    taps: dict[str, tuple[str, int, int]]
    input_scale: float  # real = pixel * scale - 1 (the file's input quantisation: scale 1/128, zero point 128)

    def path(self, root: Path = PRETRAINED_ROOT) -> Path:
        return root / self.folder / self.file

    def reference(self) -> dict[str, Any]:
        """What the manifest records about the backbone a model was cut from."""
        return {"name": self.name, "file": f"models/pretrained/{self.folder}/{self.file}", "sha256": self.sha256,
                "source": self.source, "licence": self.licence}  # fmt: skip


MOBILENET_V2 = Backbone(
    name="mobilenet_v2_1.0_224_quant",
    folder="imagenet-mobilenet",
    file="mobilenet_v2_1.0_224_quant.tflite",
    sha256="7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776",
    source="google-coral/test_data@104342d2d3480b3e66203073dac24f4e2dbb4c41",
    licence="Apache-2.0",
    taps={
        "features_s8": ("MobilenetV2/expanded_conv_5/add", 8, 32),
        "features_s16": ("MobilenetV2/expanded_conv_12/add", 16, 96),
        "features_s4": ("MobilenetV2/expanded_conv_2/add", 4, 24),
        "features_s32": ("MobilenetV2/expanded_conv_15/add", 32, 160),
        "expand_s8": (
            "MobilenetV2/expanded_conv_6/expand/Relu6;MobilenetV2/expanded_conv_6/expand/add_fold;"
            "MobilenetV2/expanded_conv_6/depthwise/depthwise_Fold;MobilenetV2/expanded_conv_6/expand/Conv2D_Fold;"
            "MobilenetV2/expanded_conv_6/expand/BatchNorm_Fold/bias",
            8,
            192,
        ),
    },
    input_scale=1 / 128,
)


def load_pretrained(backbone: Backbone = MOBILENET_V2, root: Path = PRETRAINED_ROOT) -> bytes:
    """The pretrained file's bytes once its sha256 matches the one this module records."""
    path = backbone.path(root)
    if not path.is_file():
        raise ModelError(f"{path}: the pretrained backbone is missing; restore models/pretrained/ from the repository")
    actual = sha256_file(path)
    if actual != backbone.sha256:
        raise ModelError(f"{path}: sha256 {actual[:12]}... is not the pretrained file ({backbone.sha256[:12]}...)")
    return path.read_bytes()


# ---------------------------------------------------------------------------------------------- TFLite cut
# Flatbuffer field slots (tensorflow/lite/schema/schema.fbs): Model.subgraphs 2, buffers 4; SubGraph.tensors 0,
# inputs 1, outputs 2, operators 3; Tensor.shape 0, buffer 2, name 3, quantization 4, shape_signature 7;
# Operator.inputs 1, outputs 2; Buffer.data 0; QuantizationParameters.scale 2, zero_point 3.


def _u32(buf: bytes | bytearray, pos: int) -> int:
    return int(struct.unpack_from("<I", buf, pos)[0])


def _field(buf: bytes | bytearray, table: int, slot: int) -> int | None:
    """Absolute position of a table field, None when the field is absent."""
    vtable = table - int(struct.unpack_from("<i", buf, table)[0])
    entry = 4 + 2 * slot
    if entry >= int(struct.unpack_from("<H", buf, vtable)[0]):
        return None
    offset = int(struct.unpack_from("<H", buf, vtable + entry)[0])
    return table + offset if offset else None


def _vector(buf: bytes | bytearray, table: int, slot: int) -> tuple[int, int]:
    """(position of the length word, length) of a vector field."""
    pos = _field(buf, table, slot)
    if pos is None:
        return 0, 0
    vec = pos + _u32(buf, pos)
    return vec, _u32(buf, vec)


def _table_at(buf: bytes | bytearray, vec: int, i: int) -> int:
    elem = vec + 4 + 4 * i
    return elem + _u32(buf, elem)


def _string(buf: bytes | bytearray, table: int, slot: int) -> str:
    vec, n = _vector(buf, table, slot)
    return bytes(buf[vec + 4 : vec + 4 + n]).decode("utf-8") if n else ""


def _subgraph(buf: bytes | bytearray) -> int:
    vec, n = _vector(buf, _u32(buf, 0), 2)
    if n != 1:
        raise ModelError(f"the pretrained TFLite file has {n} subgraphs; expected 1")
    return _table_at(buf, vec, 0)


def _tensor_indices(buf: bytes | bytearray, sub: int, names: list[str]) -> list[int]:
    vec, n = _vector(buf, sub, 0)
    found = {_string(buf, _table_at(buf, vec, i), 3): i for i in range(n)}
    missing = [name for name in names if name not in found]
    if missing:
        raise ModelError(f"the pretrained TFLite file has no tensor {missing[0]!r}")
    return [found[name] for name in names]


def _last_producer(buf: bytes | bytearray, sub: int, tensors: list[int]) -> int:
    """Index of the last operator that writes one of `tensors` (operators are stored in execution order)."""
    vec, n = _vector(buf, sub, 3)
    last = -1
    for i in range(n):
        out_vec, count = _vector(buf, _table_at(buf, vec, i), 2)
        outs = struct.unpack_from(f"<{count}i", buf, out_vec + 4)
        if any(t in outs for t in tensors):
            last = i
    return last


def _tensor(buf: bytes | bytearray, sub: int, index: int) -> int:
    return _table_at(buf, _vector(buf, sub, 0)[0], index)


def _set_input_shape(buf: bytearray, sub: int, height: int, width: int, channels: int) -> None:
    in_vec, _ = _vector(buf, sub, 1)
    tensor = _tensor(buf, sub, int(struct.unpack_from("<i", buf, in_vec + 4)[0]))
    for slot in (0, 7):  # shape and shape_signature, both [1, H, W, C]
        vec, n = _vector(buf, tensor, slot)
        if n == 4:
            struct.pack_into("<4i", buf, vec + 4, 1, height, width, channels)


def _quant(buf: bytes | bytearray, tensor: int) -> tuple[int, int]:
    """Positions of the (single) scale float and zero point int64 of a per-tensor quantised tensor."""
    table = _field(buf, tensor, 4)
    assert table is not None
    q = table + _u32(buf, table)
    (scale_vec, n_scale), (zero_vec, n_zero) = _vector(buf, q, 2), _vector(buf, q, 3)
    if n_scale != 1 or n_zero != 1:
        raise ModelError("the pretrained TFLite file's first convolution is not per-tensor quantised")
    return scale_vec + 4, zero_vec + 4


def _buffer_data(buf: bytes | bytearray, tensor: int) -> tuple[int, int]:
    """The data vector of the buffer a constant tensor points at."""
    index_field = _field(buf, tensor, 2)
    assert index_field is not None
    buffers, _ = _vector(buf, _u32(buf, 0), 4)
    return _vector(buf, _table_at(buf, buffers, _u32(buf, index_field)), 0)


def _fold_grey_tflite(buf: bytearray, sub: int) -> None:
    """The first convolution reads one channel: uint8 weights summed over R, G, B and quantised again."""
    op = _table_at(buf, _vector(buf, sub, 3)[0], 0)
    ins_vec, _ = _vector(buf, op, 1)
    image, weight, bias = struct.unpack_from("<3i", buf, ins_vec + 4)
    w_t, b_t, in_t = _tensor(buf, sub, weight), _tensor(buf, sub, bias), _tensor(buf, sub, image)
    shape_vec, _ = _vector(buf, w_t, 0)
    o, kh, kw, c = struct.unpack_from("<4i", buf, shape_vec + 4)
    data_vec, _ = _buffer_data(buf, w_t)
    (w_scale, w_zero), (b_scale, _bz), (in_scale, _iz) = _quant(buf, w_t), _quant(buf, b_t), _quant(buf, in_t)
    s, z = struct.unpack_from("<f", buf, w_scale)[0], struct.unpack_from("<q", buf, w_zero)[0]
    q = np.frombuffer(bytes(buf[data_vec + 4 : data_vec + 4 + o * kh * kw * c]), np.uint8).reshape(o, kh, kw, c)
    folded = (s * (q.astype(np.float64) - z)).sum(axis=3, keepdims=True)
    lo, hi = min(float(folded.min()), 0.0), max(float(folded.max()), 0.0)
    s2 = (hi - lo) / 255.0
    z2 = round(-lo / s2)
    q2 = np.clip(np.round(folded / s2) + z2, 0, 255).astype(np.uint8)
    buf[data_vec + 4 : data_vec + 4 + q2.size] = q2.tobytes()
    struct.pack_into("<I", buf, data_vec, q2.size)
    struct.pack_into("<4i", buf, shape_vec + 4, o, kh, kw, 1)
    struct.pack_into("<f", buf, w_scale, s2)
    struct.pack_into("<q", buf, w_zero, z2)
    in_s = struct.unpack_from("<f", buf, in_scale)[0]
    bias_vec, _ = _buffer_data(buf, b_t)
    b = np.frombuffer(bytes(buf[bias_vec + 4 : bias_vec + 4 + 4 * o]), np.int32).astype(np.float64) * s / s2
    buf[bias_vec + 4 : bias_vec + 4 + 4 * o] = np.round(b).astype(np.int32).tobytes()
    struct.pack_into("<f", buf, b_scale, in_s * s2)


def tflite_cut(
    outputs: list[str], height: int, width: int, channels: int = 3, backbone: Backbone = MOBILENET_V2
) -> bytes:
    """The pretrained uint8 TFLite cut after the operators that produce `outputs`, input 1 x H x W x channels.

    The flatbuffer is edited in place where the new value fits (operator count, input shape) and the new
    outputs vector is appended at the end: flatbuffer offsets point forward, so the subgraph's outputs
    field can point there. The interpreter re-derives every intermediate shape from the input shape.
    """
    buf = bytearray(load_pretrained(backbone))
    sub = _subgraph(buf)
    tensors = _tensor_indices(buf, sub, [backbone.taps[o][0] for o in outputs])
    ops_vec, _ = _vector(buf, sub, 3)
    struct.pack_into("<I", buf, ops_vec, _last_producer(buf, sub, tensors) + 1)
    _set_input_shape(buf, sub, height, width, channels)
    if channels == 1:
        _fold_grey_tflite(buf, sub)
    buf.extend(b"\0" * (-len(buf) % 4))
    new_vec = len(buf)
    buf.extend(struct.pack(f"<I{len(tensors)}i", len(tensors), *tensors))
    out_field = _field(buf, sub, 2)
    assert out_field is not None  # a model always has outputs
    struct.pack_into("<I", buf, out_field, new_vec - out_field)
    return bytes(buf)


# ------------------------------------------------------------------------------------------------ ONNX cut


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise RuntimeUnavailableError(f"cutting the pretrained backbone needs {name}: {FIT_HINT}") from exc


def _convert(backbone: Backbone) -> Any:
    """The pretrained TFLite as an ONNX graph (tflite2onnx keeps its fake-quant pairs)."""
    onnx, t2o = _import("onnx"), _import("tflite2onnx")
    logging.getLogger("tflite2onnx").setLevel(logging.WARNING)  # it logs every conversion at INFO
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "backbone.tflite"), Path(tmp, "backbone.onnx")
        src.write_bytes(load_pretrained(backbone))
        t2o.convert(str(src), str(dst))
        return onnx.load(str(dst))


def _strip_fake_quant(model: Any) -> None:
    """Drop every QuantizeLinear -> DequantizeLinear pair: a float graph for our own quantiser to calibrate."""
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    alias: dict[str, str] = {}
    for node in graph.node:
        src = producers.get(node.input[0])
        if node.op_type == "DequantizeLinear" and src is not None and src.op_type == "QuantizeLinear":
            alias[node.output[0]] = src.input[0]
    keep = [n for n in graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")]
    for node in keep:
        for i, name in enumerate(node.input):
            node.input[i] = alias.get(name, name)
    del graph.node[:]
    graph.node.extend(keep)


def _fold_grey(model: Any, first_input: str) -> None:
    """The convolution reading the image takes one channel: its weights summed over R, G and B."""
    numpy_helper = _import("onnx.numpy_helper")
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Conv" and node.input[0] == first_input:
            weight = numpy_helper.to_array(inits[node.input[1]])
            folded = weight.sum(axis=1, keepdims=True).astype(np.float32)
            inits[node.input[1]].CopyFrom(numpy_helper.from_array(folded, node.input[1]))


def onnx_cut(outputs: list[str], height: int, width: int, channels: int, backbone: Backbone = MOBILENET_V2) -> Any:
    """An fp32 ONNX ModelProto: input `image` 1 x H x W x channels (NHWC), the named taps as NHWC outputs."""
    onnx = _import("onnx")
    helper = onnx.helper
    model = _convert(backbone)
    _strip_fake_quant(model)
    graph = model.graph
    old_input = graph.input[0].name
    taps = [backbone.taps[o][0] for o in outputs]
    extracted = onnx.utils.Extractor(model).extract_model([old_input], taps)
    g = extracted.graph
    if channels == 1:
        _fold_grey(extracted, old_input)
    g.node.insert(0, helper.make_node("Transpose", [INPUT_NAME], [old_input], perm=[0, 3, 1, 2]))
    for name, tap in zip(outputs, taps):
        g.node.append(helper.make_node("Transpose", [tap], [name], perm=[0, 2, 3, 1]))
    del g.input[:]
    g.input.append(helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, [1, height, width, channels]))
    del g.output[:]
    for name in outputs:
        _tap, stride, ch = backbone.taps[name]
        g.output.append(
            helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [1, height // stride, width // stride, ch])
        )
    del g.value_info[:]  # shapes of the 224 x 224 original; onnxruntime infers them again
    # tflite2onnx writes opset 11; per-channel int8 (DequantizeLinear's axis) needs 13. Conv, Clip, Add and
    # Transpose mean the same in both, so the version number is all that changes.
    for opset in extracted.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = max(opset.version, 13)
    onnx.checker.check_model(extracted)
    return extracted
