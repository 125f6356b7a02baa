"""A random-weight MobileNetV2 classifier, built at benchmark time as the reference 224x224 edge workload.

MobileNetV2 1.0 at 224x224 (about 300M MACs, 3.5M parameters) is the usual yardstick for "a 224x224
model" on edge CPUs. Its weights are random (timing only, never accuracy), drawn from a fixed seed, so
the 14 MB file is rebuilt into a cache folder instead of being committed. Needs the `onnx` package.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from edge_agent.errors import ModelError, RuntimeUnavailableError
from edge_agent.runtime.manifest import (
    InputSpec,
    Manifest,
    ModelFile,
    TensorSpec,
    load_manifest,
    sha256_file,
    verify_file,
    write_manifest,
)

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT / "artifacts" / "bench-models" / "mobilenetv2-224"
INSTALL_HINT = "pip install -e '.[bench]'"
# Bump when the graph, the weights or the quantization change: cached folders of another version are rebuilt.
VERSION = "1.1.0"
SEED = 20
CLASSES = 1000
OPSET = 17
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
# (expansion t, output channels c, repeats n, first stride s): Table 2 of the MobileNetV2 paper.
INVERTED_RESIDUALS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                      (6, 320, 1, 1))  # fmt: skip
FILES = {"onnx-fp32": ("model.fp32.onnx", "fp32"), "onnx-int8": ("model.int8.onnx", "int8")}


@dataclass(frozen=True)
class Size:
    """Multiply-accumulates of one inference and learned parameters of a network."""

    macs: int
    params: int

    def describe(self) -> str:
        return f"{self.macs / 1e6:.1f}M MACs, {self.params / 1e6:.2f}M params"


def require_onnx() -> ModuleType:
    try:
        import onnx
    except ImportError as exc:
        raise RuntimeUnavailableError(f"the onnx package is not installed: {INSTALL_HINT}") from exc
    return onnx


def model_name(width: float, resolution: int) -> str:
    return f"mobilenetv2-{width:g}-{resolution}"


def divisible(value: float, divisor: int = 8) -> int:
    """Channel count rounded to a multiple of 8, never more than 10% below `value` (the reference rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class _Graph:
    """Nodes and random initializers of one ONNX graph, built in order."""

    def __init__(self, onnx: ModuleType, seed: int) -> None:
        self.onnx = onnx
        self.nodes: list[Any] = []
        self.initializers: list[Any] = [
            onnx.numpy_helper.from_array(np.array(0.0, np.float32), "relu6_min"),
            onnx.numpy_helper.from_array(np.array(6.0, np.float32), "relu6_max"),
        ]
        self._rng = np.random.default_rng(seed)
        self._count = 0

    def _node(self, op: str, inputs: list[str], out: str = "", **attrs: Any) -> str:
        self._count += 1
        name = f"{op.lower()}{self._count}"
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out or name], name=name, **attrs))
        return out or name

    def _weight(self, name: str, shape: tuple[int, ...], gain: float) -> str:
        fan_in = math.prod(shape[1:])  # He scaling: activations keep their variance from layer to layer
        array = self._rng.normal(0.0, math.sqrt(gain / fan_in), shape).astype(np.float32)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def conv(self, x: str, cin: int, cout: int, kernel: int, stride: int = 1, *, depthwise: bool = False,
             relu6: bool = True, gain: float = 2.0) -> str:  # fmt: skip
        """Conv with bias (batch norm folded in), then ReLU6 as Clip(0, 6) unless it is a linear projection."""
        groups = cin if depthwise else 1
        w = self._weight(f"w{self._count + 1}", (cout, cin // groups, kernel, kernel), gain)
        b = f"b{self._count + 1}"
        bias = self._rng.normal(0.0, 0.01, cout).astype(np.float32)
        self.initializers.append(self.onnx.numpy_helper.from_array(bias, b))
        pad = kernel // 2
        y = self._node("Conv", [x, w, b], kernel_shape=[kernel, kernel], strides=[stride, stride],
                       pads=[pad] * 4, group=groups)  # fmt: skip
        return self._node("Clip", [y, "relu6_min", "relu6_max"]) if relu6 else y

    def block(self, x: str, cin: int, cout: int, expansion: int, stride: int) -> str:
        """Inverted residual: 1x1 expand, 3x3 depthwise, 1x1 linear projection, + input when shapes allow."""
        hidden = cin * expansion
        h = self.conv(x, cin, hidden, 1) if expansion != 1 else x
        h = self.conv(h, hidden, hidden, 3, stride, depthwise=True)
        residual = stride == 1 and cin == cout
        # A linear projection keeps the variance (gain 1); on a residual branch it adds a quarter of it, so
        # the sum grows slowly through a stage instead of doubling at every block.
        h = self.conv(h, hidden, cout, 1, relu6=False, gain=0.25 if residual else 1.0)
        return self._node("Add", [x, h]) if residual else h

    def head(self, x: str, cin: int, classes: int) -> str:
        pooled = self._node("Flatten", [self._node("GlobalAveragePool", [x])], axis=1)
        w = self._weight("fc_w", (classes, cin), 1.0)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.zeros(classes, np.float32), "fc_b"))
        logits = self._node("Gemm", [pooled, w, "fc_b"], transB=1)
        return self._node("Softmax", [logits], "probs", axis=1)


def mobilenet_v2(width: float = 1.0, resolution: int = 224, seed: int = SEED) -> Any:
    """The MobileNetV2 graph (NCHW `image` in, softmax `probs` [1, 1000] out) with random weights."""
    onnx = require_onnx()
    g = _Graph(onnx, seed)
    channels = divisible(32 * width)
    x = g.conv("image", 3, channels, 3, 2)
    for expansion, c, repeats, stride in INVERTED_RESIDUALS:
        cout = divisible(c * width)
        for i in range(repeats):
            x = g.block(x, channels, cout, expansion, stride if i == 0 else 1)
            channels = cout
    last = divisible(1280 * max(1.0, width))
    x = g.conv(x, channels, last, 1)
    g.head(x, last, CLASSES)
    f32 = onnx.TensorProto.FLOAT
    graph = onnx.helper.make_graph(
        g.nodes, model_name(width, resolution),
        [onnx.helper.make_tensor_value_info("image", f32, [1, 3, resolution, resolution])],
        [onnx.helper.make_tensor_value_info("probs", f32, [1, CLASSES])], g.initializers,
    )  # fmt: skip
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # readable by every onnxruntime the project supports (>= 1.17)
    return model


def graph_size(path: Path) -> Size:
    """MACs and parameters of the Conv, Gemm and MatMul nodes of a float ONNX file, from its inferred shapes."""
    onnx = require_onnx()
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    weights = {t.name: tuple(t.dims) for t in model.graph.initializer}
    shapes = {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim)
              for v in (*model.graph.value_info, *model.graph.output, *model.graph.input)}  # fmt: skip
    macs = params = 0
    for node in model.graph.node:
        if node.op_type not in {"Conv", "Gemm", "MatMul"}:
            continue
        params += sum(math.prod(weights[name]) for name in node.input[1:] if name in weights)
        w = weights.get(node.input[1]) or shapes.get(node.input[1], ())
        out = shapes.get(node.output[0], ())
        if node.op_type == "Conv":
            per_output = math.prod(w[1:])
        elif node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
            per_output = w[1]
        else:
            per_output = w[0]
        macs += math.prod(out) * per_output
    return Size(macs, params)


def is_cached(out_dir: Path, name: str) -> bool:
    """True when `out_dir` holds this builder's `name` model and every file matches its manifest hash."""
    try:
        manifest = load_manifest(out_dir)
        for variant in manifest.files:
            verify_file(out_dir, manifest, variant)
    except ModelError:
        return False
    return manifest.name == name and manifest.version == VERSION


def ensure(out_dir: Path | None = None, width: float = 1.0, resolution: int = 224, calibration: int = 16) -> Path:
    """The model folder (default DEFAULT_DIR), built only when it is missing, of another build, or corrupt."""
    out_dir = out_dir or DEFAULT_DIR
    if not is_cached(out_dir, model_name(width, resolution)):
        logger.info("building %s into %s", model_name(width, resolution), out_dir)
        build(out_dir, width, resolution, calibration)
    return out_dir


def build(out_dir: Path, width: float = 1.0, resolution: int = 224, calibration: int = 16) -> Path:
    """Write model.fp32.onnx, its static int8 copy and manifest.yaml into `out_dir`."""
    from edge_agent.runtime.quantize import quantize_onnx

    onnx = require_onnx()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "manifest.yaml").unlink(missing_ok=True)  # a half-built folder is never taken for a cached one
    model = mobilenet_v2(width, resolution)
    onnx.checker.check_model(model, full_check=True)
    fp32, int8 = (out_dir / FILES[v][0] for v in ("onnx-fp32", "onnx-int8"))
    onnx.save(model, str(fp32))
    quantize_onnx(fp32, int8, calibration_inputs(resolution, calibration), "image")
    write_manifest(out_dir, manifest(out_dir, width, resolution, graph_size(fp32)))
    return out_dir


def calibration_inputs(resolution: int, count: int, seed: int = SEED + 1) -> list[np.ndarray]:
    """Random frames normalised the way the manifest tells the pipeline to (pixels/255, ImageNet mean/std)."""
    rng = np.random.default_rng(seed)
    mean, std = (np.array(v, np.float32).reshape(1, 3, 1, 1) for v in (MEAN, STD))
    return [((rng.uniform(0, 1, (1, 3, resolution, resolution)) - mean) / std).astype(np.float32)
            for _ in range(count)]  # fmt: skip


def manifest(out_dir: Path, width: float, resolution: int, size: Size) -> Manifest:
    return Manifest(
        name=model_name(width, resolution), version=VERSION, task="classify",
        description=f"Random-weight MobileNetV2 {width:g} at {resolution}x{resolution} ({size.describe()}) "
                    "for the pipeline-overhead benchmark (timing only).",
        files={k: ModelFile(path=p, sha256=sha256_file(out_dir / p), format="onnx", precision=q)
               for k, (p, q) in FILES.items()},
        default_variant="onnx-int8",
        inputs=[InputSpec(name="image", shape=[1, 3, resolution, resolution], layout="NCHW", color="RGB",
                          scale=1 / 255, mean=MEAN, std=STD)],
        outputs=[TensorSpec(name="probs", shape=[1, CLASSES])],
        decoder="softmax", labels=[f"class{i}" for i in range(CLASSES)],
    )  # fmt: skip
