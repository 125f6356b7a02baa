"""`edge-agent fit defect --recipe autoencoder` end to end on a few synthetic parts (needs the train extra)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.tasks.defect.synth import write_set

pytest.importorskip("torch", reason="fitting needs the train extra (torch)")
pytest.importorskip("tensorflow", reason="fitting needs the train extra (tensorflow)")


@pytest.mark.slow
def test_fit_writes_a_loadable_model_folder_with_card(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge_agent.config import OnnxRuntimeConfig
    from edge_agent.runtime.registry import load_model
    from edge_agent.tasks.defect.fit import main

    write_set(tmp_path / "data", good=16, defects=4, size=96, seed=0)
    out = tmp_path / "model"
    code = main(["--recipe", "autoencoder", "--good", str(tmp_path / "data" / "good"),
                 "--defects", str(tmp_path / "data" / "defects"),
                 "--out", str(out), "--size", "64x64", "--steps", "20", "--batch", "4", "--crop", "64",
                 "--threads", "1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert "training 20/20" in err and "only 16 good images" in err
    model = load_model(out, None, OnnxRuntimeConfig())
    assert model.manifest.thresholds["score"] > 0 and model.variant == "onnx-int8"
    card = (out / "MODEL_CARD.md").read_text()
    assert "edge-agent fit defect" in card and "p95" in card
