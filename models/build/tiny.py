"""Builds the tiny test classifier (tests/data/tiny-classifier): fp32 ONNX, int8 ONNX, int8 TFLite.

Run with the build environment (torch + tensorflow):  python models/build/tiny.py
The network is random-weight on purpose: tests check plumbing and fp32/int8 agreement, not accuracy.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "tests" / "data" / "tiny-classifier"
LABELS = ["empty", "part", "scratch", "stain"]


def build_torch() -> object:
    import torch

    torch.manual_seed(7)

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.conv2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
            self.fc = torch.nn.Linear(16, len(LABELS))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.conv1(x))
            x = torch.relu(self.conv2(x))
            x = x.mean(dim=(2, 3))
            return torch.softmax(self.fc(x), dim=1)

    return Tiny().eval()


def export_onnx(model: object, path: Path) -> None:
    import torch

    dummy = torch.zeros(1, 3, 32, 32)
    torch.onnx.export(model, (dummy,), str(path), input_names=["image"], output_names=["probs"],
                      opset_version=17, external_data=False, dynamo=False)  # fmt: skip


def export_tflite(model: object, path: Path, calib: np.ndarray) -> None:
    import tensorflow as tf

    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}  # type: ignore[attr-defined]
    inp = tf.keras.Input((3, 32, 32), batch_size=1)
    x = tf.keras.layers.Permute((2, 3, 1))(inp)  # accept NCHW like the ONNX file: one manifest for both
    for name, stride in (("conv1", 2), ("conv2", 2)):
        w = sd[f"{name}.weight"].transpose(2, 3, 1, 0)
        x = tf.keras.layers.ZeroPadding2D(1)(x)
        conv = tf.keras.layers.Conv2D(w.shape[3], 3, strides=stride, activation="relu")
        x = conv(x)
        conv.set_weights([w, sd[f"{name}.bias"]])
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    dense = tf.keras.layers.Dense(len(LABELS), activation="softmax")
    out = dense(x)
    dense.set_weights([sd["fc.weight"].T, sd["fc.bias"]])
    keras_model = tf.keras.Model(inp, out)
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([c[None]] for c in calib)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path.write_bytes(converter.convert())


def build_cnn224() -> None:
    """A MobileNet-sized random CNN at 224x224 for the pipeline-overhead benchmark (bench/pipeline_overhead.py)."""
    import torch

    from edge_agent.runtime.manifest import InputSpec, Manifest, ModelFile, TensorSpec, sha256_file, write_manifest
    from edge_agent.runtime.quantize import quantize_onnx

    torch.manual_seed(11)
    layers: list[torch.nn.Module] = []
    channels = [3, 16, 32, 64, 128, 256]
    for cin, cout in itertools.pairwise(channels):
        layers += [torch.nn.Conv2d(cin, cout, 3, stride=2, padding=1), torch.nn.ReLU(),
                   torch.nn.Conv2d(cout, cout, 3, padding=1, groups=cout), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(256, 10), torch.nn.Softmax(dim=1)).eval()
    out = ROOT / "tests" / "data" / "cnn224"
    out.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(net, (torch.zeros(1, 3, 224, 224),), str(out / "model.fp32.onnx"), input_names=["image"],
                      output_names=["probs"], opset_version=17, external_data=False, dynamo=False)
    rng = np.random.default_rng(5)
    calib = [rng.uniform(-2, 2, (1, 3, 224, 224)).astype(np.float32) for _ in range(32)]
    quantize_onnx(out / "model.fp32.onnx", out / "model.int8.onnx", calib, "image")
    files = {"onnx-fp32": ("model.fp32.onnx", "fp32"), "onnx-int8": ("model.int8.onnx", "int8")}
    manifest = Manifest(
        name="cnn224", version="1.0.0", task="classify",
        description="Random-weight 224x224 CNN for the pipeline-overhead benchmark (plumbing only).",
        files={k: ModelFile(path=p, sha256=sha256_file(out / p), format="onnx", precision=q)  # type: ignore[arg-type]
               for k, (p, q) in files.items()},
        default_variant="onnx-int8",
        inputs=[InputSpec(name="image", shape=[1, 3, 224, 224], layout="NCHW", color="RGB", scale=1 / 255,
                          mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])],
        outputs=[TensorSpec(name="probs", shape=[1, 10])],
        decoder="softmax", labels=[f"class{i}" for i in range(10)],
    )
    write_manifest(out, manifest)


def main() -> None:
    from edge_agent.runtime.manifest import InputSpec, Manifest, ModelFile, TensorSpec, sha256_file, write_manifest
    from edge_agent.runtime.quantize import quantize_onnx

    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    calib = rng.uniform(-1, 1, size=(64, 3, 32, 32)).astype(np.float32)
    model = build_torch()
    export_onnx(model, OUT / "model.fp32.onnx")
    quantize_onnx(OUT / "model.fp32.onnx", OUT / "model.int8.onnx", [c[None] for c in calib], "image")
    export_tflite(model, OUT / "model.int8.tflite", calib)
    files = {
        "onnx-fp32": ("model.fp32.onnx", "onnx", "fp32"),
        "onnx-int8": ("model.int8.onnx", "onnx", "int8"),
        "tflite-int8": ("model.int8.tflite", "tflite", "int8"),
    }
    manifest = Manifest(
        name="tiny-classifier", version="1.0.0", task="classify",
        description="Random-weight 32x32 classifier used by the test suite (plumbing only).",
        files={k: ModelFile(path=p, sha256=sha256_file(OUT / p), format=f, precision=q)  # type: ignore[arg-type]
               for k, (p, f, q) in files.items()},
        default_variant="onnx-int8",
        inputs=[InputSpec(name="image", shape=[1, 3, 32, 32], layout="NCHW", color="RGB", scale=1 / 127.5,
                          mean=[1.0, 1.0, 1.0], std=[1.0, 1.0, 1.0])],
        outputs=[TensorSpec(name="probs", shape=[1, len(LABELS)])],
        decoder="softmax", labels=LABELS, thresholds={"score": 0.3},
    )  # fmt: skip
    write_manifest(OUT, manifest)
    build_cnn224()
    print("wrote", OUT, "and tests/data/cnn224")


if __name__ == "__main__":
    main()
