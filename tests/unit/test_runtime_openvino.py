"""OpenVINO behind the runtime interface: same ONNX files, same outputs as onnxruntime, picked by the runtime table."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import OnnxRuntimeConfig, OpenVINOConfig
from edge_agent.errors import ModelError, RuntimeUnavailableError
from edge_agent.runtime.manifest import load_manifest
from edge_agent.runtime.openvino import compile_options
from edge_agent.runtime.quant_ranges import input_range
from edge_agent.runtime.registry import BACKENDS, load_model

pytest.importorskip("openvino")

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "data" / "tiny-classifier"
SHIPPED = sorted(p.parent for p in (ROOT / "models").glob("*/manifest.yaml"))
# Every ONNX file each shipped model folder holds (a folder ships int8 only where it passed its accuracy gate).
SHIPPED_ONNX = [
    pytest.param(model_dir, name, entry.precision, id=f"{name}-{model_dir.name}")
    for model_dir in SHIPPED
    for name, entry in sorted(load_manifest(model_dir).files.items())
    if entry.format == "onnx"
]


def feeds_for(model_dir: Path) -> list[np.ndarray]:
    """Noise over the range each input takes (0..255 for raw pixels; 0..1 where that range is not known)."""
    model = load_model(model_dir, None, OnnxRuntimeConfig(providers=["cpu"]), warmup=False)
    rng = np.random.default_rng(7)
    feeds = []
    for spec in model.manifest.inputs:
        low, high = input_range(spec) or (0.0, 1.0)
        feeds.append(rng.uniform(low, high, [d or 1 for d in spec.shape]).astype(spec.dtype))
    return feeds


@pytest.mark.parametrize(("model_dir", "variant", "precision"), SHIPPED_ONNX)
def test_openvino_matches_onnxruntime_on_the_shipped_models(model_dir: Path, variant: str, precision: str) -> None:
    feeds = feeds_for(model_dir)
    ov = load_model(model_dir, variant, OpenVINOConfig(kind="openvino"))
    ort = load_model(model_dir, variant, OnnxRuntimeConfig(providers=["cpu"]))
    assert ov.runtime.description.startswith("openvino ") and "[CPU f32]" in ov.runtime.description
    for got, want in zip(ov.runtime.run(feeds), ort.runtime.run(feeds)):
        assert got.shape == want.shape
        diff = np.abs(got - want)
        if precision == "fp32":  # fp32 differs by op fusion order only
            assert float(diff.max()) <= 0.02
        else:  # each runs the int8 graph with its own kernels: a rounding flip costs one quantization step
            scale = float(np.abs(want).max()) + 1e-3
            assert float(diff.mean()) <= 0.02 * scale and float(diff.max()) <= 0.15 * scale


def test_outputs_survive_the_next_inference() -> None:
    """OpenVINO hands out views of its buffers; the runtime copies them so a result is not overwritten."""
    model = load_model(TINY, "onnx-fp32", OpenVINOConfig(kind="openvino"))
    spec = model.manifest.inputs[0]
    first = model.runtime.run([np.ones(spec.shape, dtype=spec.dtype)])[0]
    kept = first.copy()
    model.runtime.run([np.zeros(spec.shape, dtype=spec.dtype)])
    assert np.array_equal(first, kept)


def test_runtime_table_reads_onnx_files_and_picks_an_onnx_variant() -> None:
    assert BACKENDS["openvino"][2] == "onnx"
    model = load_model(TINY, None, OpenVINOConfig(kind="openvino"), warmup=False)
    assert model.entry.format == "onnx"


def test_a_device_openvino_does_not_have_is_refused_with_the_choices() -> None:
    with pytest.raises(RuntimeUnavailableError, match=r"device NPU is not available to OpenVINO here \(found CPU"):
        load_model(TINY, "onnx-fp32", OpenVINOConfig(kind="openvino", device="NPU"))


def test_corrupt_file_is_a_model_error(tmp_path: Path) -> None:
    from edge_agent.runtime.openvino import OpenVINORuntime

    folder = tmp_path / "m"
    shutil.copytree(TINY, folder)
    (folder / "model.fp32.onnx").write_bytes(b"not an onnx file")
    model = load_model(TINY, "onnx-fp32", OpenVINOConfig(kind="openvino"), warmup=False)
    with pytest.raises(ModelError, match="OpenVINO cannot compile this file"):
        OpenVINORuntime(folder / "model.fp32.onnx", model.entry, OpenVINOConfig(kind="openvino"))


def test_compile_options_budget_threads_on_cpu_only() -> None:
    options = compile_options(OpenVINOConfig(kind="openvino", threads=2))
    assert options["INFERENCE_NUM_THREADS"] == "2" and options["INFERENCE_PRECISION_HINT"] == "f32"
    assert "INFERENCE_PRECISION_HINT" not in compile_options(OpenVINOConfig(kind="openvino", precision="auto"))
    gpu = compile_options(OpenVINOConfig(kind="openvino", device="GPU", cache_dir="/data/cache/openvino"))
    assert "INFERENCE_NUM_THREADS" not in gpu and gpu["CACHE_DIR"] == "/data/cache/openvino"
