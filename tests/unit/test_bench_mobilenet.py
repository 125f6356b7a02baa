"""The benchmark's MobileNetV2 builder: a valid graph of the reference size that the daemon's loader accepts."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest

from bench import mobilenet, pipeline_overhead
from edge_agent.config import OnnxRuntimeConfig
from edge_agent.errors import RuntimeUnavailableError
from edge_agent.runtime.registry import load_model


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quarter-width 64x64 build: the same graph shape as the benchmark's, small enough to build in a second."""
    return mobilenet.build(tmp_path_factory.mktemp("mobilenet") / "m", width=0.25, resolution=64, calibration=4)


def test_small_build_is_a_valid_softmax_classifier(small: Path) -> None:
    onnx.checker.check_model(str(small / "model.fp32.onnx"), full_check=True)
    session = ort.InferenceSession(str(small / "model.fp32.onnx"), providers=["CPUExecutionProvider"])
    x = mobilenet.calibration_inputs(64, 1, seed=7)[0]
    (probs,) = session.run(None, {"image": x})
    assert probs.shape == (1, 1000)
    assert probs.min() >= 0
    assert abs(float(probs.sum()) - 1.0) < 1e-4


def test_manifest_loads_and_both_variants_run(small: Path) -> None:
    frame = mobilenet.calibration_inputs(64, 1, seed=8)[0]
    for variant in ("onnx-fp32", "onnx-int8"):
        model = load_model(small, variant, OnnxRuntimeConfig(intra_op_threads=1))
        assert model.manifest.name == "mobilenetv2-0.25-64"
        assert model.manifest.inputs[0].shape == [1, 3, 64, 64]
        assert model.runtime.run([frame])[0].shape == (1, 1000)


def test_full_width_graph_has_the_reference_size(tmp_path: Path) -> None:
    # MobileNetV2 1.0 at 224x224: 300.8M MACs, 3.50M parameters with batch norm (3.49M once folded into biases).
    path = tmp_path / "full.onnx"
    onnx.save(mobilenet.mobilenet_v2(1.0, 224), str(path))
    size = mobilenet.graph_size(path)
    assert 299e6 < size.macs < 302e6
    assert 3.45e6 < size.params < 3.52e6


def test_cached_build_is_reused_and_a_corrupt_one_rebuilt(small: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(small, tmp_path / "cache"))
    int8 = folder / "model.int8.onnx"
    stamp = int8.stat().st_mtime_ns
    mobilenet.ensure(folder, width=0.25, resolution=64, calibration=4)
    assert int8.stat().st_mtime_ns == stamp
    int8.write_bytes(int8.read_bytes()[:-10])
    mobilenet.ensure(folder, width=0.25, resolution=64, calibration=4)
    assert mobilenet.is_cached(folder, "mobilenetv2-0.25-64")
    assert not mobilenet.is_cached(folder, "mobilenetv2-1-224")


def test_missing_onnx_is_one_line_naming_the_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.setattr(mobilenet, "DEFAULT_DIR", tmp_path / "empty")
    with pytest.raises(RuntimeUnavailableError, match=r"pip install -e '\.\[bench\]'"):
        mobilenet.build(tmp_path / "m", width=0.25, resolution=64)
    assert pipeline_overhead.main(["--iterations", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "pip install -e '.[bench]'" in err
