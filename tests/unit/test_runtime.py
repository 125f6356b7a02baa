"""Runtimes and manifests: both backends agree, and a wrong or corrupt model is refused with a clear error."""

from __future__ import annotations

import builtins
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from edge_agent.config import LiteRTConfig, OnnxRuntimeConfig
from edge_agent.errors import ModelError, RuntimeUnavailableError
from edge_agent.runtime.registry import load_model

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny-classifier"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(TINY, tmp_path / "tiny"))


def test_onnx_and_litert_agree_within_int8_error() -> None:
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
    fp32 = load_model(TINY, "onnx-fp32", OnnxRuntimeConfig()).runtime.run([x])[0]
    onnx8 = load_model(TINY, "onnx-int8", OnnxRuntimeConfig()).runtime.run([x])[0]
    tfl8 = load_model(TINY, "tflite-int8", LiteRTConfig(kind="litert")).runtime.run([x])[0]
    assert fp32.shape == onnx8.shape == tfl8.shape == (1, 4)
    assert np.abs(fp32 - onnx8).max() < 0.03
    assert np.abs(fp32 - tfl8).max() < 0.03


def test_default_variant_follows_the_runtime() -> None:
    assert load_model(TINY, None, LiteRTConfig(kind="litert"), warmup=False).variant == "tflite-int8"
    assert load_model(TINY, None, OnnxRuntimeConfig(), warmup=False).variant == "onnx-int8"


def test_corrupt_file_is_refused(model_dir: Path) -> None:
    path = model_dir / "model.int8.onnx"
    path.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="does not match the manifest"):
        load_model(model_dir, "onnx-int8", OnnxRuntimeConfig())


def test_missing_file_is_refused(model_dir: Path) -> None:
    (model_dir / "model.int8.tflite").unlink()
    with pytest.raises(ModelError, match="is missing"):
        load_model(model_dir, "tflite-int8", LiteRTConfig(kind="litert"))


def test_shape_mismatch_with_manifest_is_refused(model_dir: Path) -> None:
    manifest_path = model_dir / "manifest.yaml"
    data = yaml.safe_load(manifest_path.read_text())
    data["inputs"][0]["shape"] = [1, 3, 64, 64]
    manifest_path.write_text(yaml.safe_dump(data))
    with pytest.raises(ModelError, match="belong to different models"):
        load_model(model_dir, "onnx-fp32", OnnxRuntimeConfig())


def test_invalid_manifest_names_the_field(model_dir: Path) -> None:
    manifest_path = model_dir / "manifest.yaml"
    data = yaml.safe_load(manifest_path.read_text())
    data["files"]["onnx-int8"]["sha256"] = "short"
    manifest_path.write_text(yaml.safe_dump(data))
    with pytest.raises(ModelError, match=r"files\.onnx-int8\.sha256"):
        load_model(model_dir, None, OnnxRuntimeConfig())


def test_missing_litert_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_tflite(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith(("ai_edge_litert", "tflite_runtime")):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tflite)
    with pytest.raises(RuntimeUnavailableError, match=r"pip install 'edge-agent\[tflite\]'"):
        load_model(TINY, "tflite-int8", LiteRTConfig(kind="litert"))


def test_quantize_helper_writes_int8_variant(model_dir: Path) -> None:
    from edge_agent.runtime.manifest import load_manifest
    from edge_agent.runtime.quantize import quantize_onnx, record_int8_variant

    calib = [np.random.default_rng(i).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32) for i in range(16)]
    quantize_onnx(model_dir / "model.fp32.onnx", model_dir / "requant.onnx", calib, "image")
    record_int8_variant(model_dir, "onnx-fp32", "requant.onnx", "onnx-int8-b")
    assert load_manifest(model_dir).files["onnx-int8-b"].precision == "int8"
    loaded = load_model(model_dir, "onnx-int8-b", OnnxRuntimeConfig())
    out = loaded.runtime.run(calib[:1])[0]
    assert out.shape == (1, 4) and abs(float(out.sum()) - 1.0) < 0.05


def test_moving_average_calibration_keeps_one_outlier_frame_from_widening_the_input_range(model_dir: Path) -> None:
    import onnx
    from onnx import numpy_helper

    from edge_agent.runtime.quantize import quantize_onnx

    calib = [np.random.default_rng(i).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32) for i in range(16)]
    calib[0] = calib[0] * 50  # one frame far outside the others
    scales = []
    for moving in (False, True):
        out = model_dir / f"mavg-{moving}.onnx"
        quantize_onnx(model_dir / "model.fp32.onnx", out, calib, "image", moving_average=moving)
        graph = onnx.load(str(out)).graph
        first = next(n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "image")
        scale = next(t for t in graph.initializer if t.name == first.input[1])
        scales.append(float(numpy_helper.to_array(scale)))
    extremes, averaged = scales
    assert averaged < extremes / 5
