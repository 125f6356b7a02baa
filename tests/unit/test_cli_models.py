"""`edge-agent models list | verify | quantize` on real model folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_agent.cli import main

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny-classifier"


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    shutil.copytree(TINY, tmp_path / "models" / "tiny-classifier")
    return tmp_path / "models"


def test_list_shows_variants(models_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--dir", str(models_dir)]) == 0
    out = capsys.readouterr().out
    assert "tiny-classifier 1.0.0 task=classify" in out
    assert "onnx-int8" in out and "(default)" in out and "tflite-int8" in out


def test_verify_passes_then_flags_a_corrupt_file(models_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "verify", "--dir", str(models_dir)]) == 0
    assert capsys.readouterr().out.count("ok ") == 3
    (models_dir / "tiny-classifier" / "model.int8.tflite").write_bytes(b"broken")
    assert main(["models", "verify", "--dir", str(models_dir)]) == 1
    out = capsys.readouterr().out
    assert "FAILED  tiny-classifier/tflite-int8" in out and "Traceback" not in out


def test_quantize_adds_a_verified_int8_variant(models_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calib = models_dir.parent / "calib.npy"
    np.save(calib, np.random.default_rng(0).uniform(-1, 1, (16, 1, 3, 32, 32)).astype(np.float32))
    folder = models_dir / "tiny-classifier"
    code = main(
        [
            "models",
            "quantize",
            str(folder),
            "--calibration",
            str(calib),
            "--variant",
            "onnx-int8-site",
            "--output",
            "site.int8.onnx",
        ]
    )
    assert code == 0
    assert main(["models", "verify", "--dir", str(models_dir)]) == 0
    assert "ok      tiny-classifier/onnx-int8-site" in capsys.readouterr().out


def test_quantize_with_unreadable_calibration_is_a_clear_error(
    models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = models_dir.parent / "calib.npy"
    bad.write_text("not numpy")
    assert main(["models", "quantize", str(models_dir / "tiny-classifier"), "--calibration", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "cannot read calibration data" in err and "Traceback" not in err
