"""`edge-agent fit defect` with its default (patch) recipe, end to end on synthetic parts: no torch or
TensorFlow, thresholds cross-validated and honoured on good parts the fit never saw, every variant
(fp32 ONNX, int8 ONNX, int8 TFLite) loadable and judging like the others, and a fitted model run by
`edge-agent run` over the demo parts to a real Mosquitto subscriber."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edge_agent.tasks.defect import calibrate
from edge_agent.tasks.defect.synth import write_set
from tests.support.agent import Collector, agent_config, run_agent
from tests.support.broker import Broker

pytest.importorskip("tflite2onnx", reason="the patch recipe needs the fit extra")
pytest.importorskip("ai_edge_litert", reason="the TFLite variant needs the tflite extra")
ROOT = Path(__file__).resolve().parents[2]
PARTS = ROOT / "examples" / "data" / "defect_demo"
PREFIX = "edge/v1/plant/line-1/"


def fit(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    from edge_agent.tasks.defect.fit import main

    code = main(args)
    err = capsys.readouterr().err
    assert code == 0, err[-3000:]
    return err


def frames(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p), cv2.IMREAD_ANYCOLOR) for p in sorted(folder.glob("*.jpg"))]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    tmp = tmp_path_factory.mktemp("patchfit")
    write_set(tmp / "train", good=40, defects=0, size=128, seed=3)
    write_set(tmp / "eval", good=60, defects=24, size=128, seed=4)
    out = tmp / "model"
    from edge_agent.tasks.defect.fit import main

    capture = tmp / "stderr.txt"
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        code = main(["--good", str(tmp / "train" / "good"), "--out", str(out), "--bank", "256", "--folds", "4",
                     "--max-false-reject", "0.1", "--threads", "1", "--latency-runs", "20"])  # fmt: skip
    capture.write_text(buffer.getvalue())
    assert code == 0, buffer.getvalue()[-3000:]
    return out, tmp / "eval", buffer.getvalue()


def test_fit_writes_every_variant_with_its_own_cross_validated_threshold(fitted: tuple[Path, Path, str]) -> None:
    out, _eval, err = fitted
    manifest = yaml.safe_load((out / "manifest.yaml").read_text())
    assert manifest["decoder"] == "patch_knn" and manifest["default_variant"] == "onnx-int8"
    assert manifest["params"]["backbone"]["sha256"].startswith("7aad0c74")
    for key in ("onnx-fp32", "onnx-int8", "tflite-int8"):
        entry = manifest["params"]["variants"][key]
        assert entry["threshold"] > 0 and (out / entry["memory_bank"]["path"]).is_file()
        assert manifest["metrics"]["variants"][key]["false_reject_cv"]["of"] == 40
    card = (out / "MODEL_CARD.md").read_text()
    assert "Miss rate: unknown" in card and "95% interval" in card and "cross-validated" in card
    assert "p95" in card and "expected false rejects" in err and "miss rate unknown" in err


def test_stated_rate_holds_on_good_parts_the_fit_never_saw(fitted: tuple[Path, Path, str]) -> None:
    from edge_agent.tasks.defect.evaluate import run_variant

    out, data, _err = fitted
    good, bad = frames(data / "good"), frames(data / "defects")
    labels = np.r_[np.zeros(len(good)), np.ones(len(bad))].astype(bool)
    aurocs = {}
    for variant in ("onnx-fp32", "onnx-int8", "tflite-int8"):
        result = run_variant(out, variant, good + bad)
        scores = np.array(result.scores)
        assert result.threshold is not None
        # asked for at most 10%: a threshold set on the bank's own images would reject most fresh good parts
        assert (scores[: len(good)] >= result.threshold).mean() <= 0.25, variant
        aurocs[variant] = calibrate.auroc(scores, labels)
    assert aurocs["onnx-fp32"] > 0.85, aurocs
    assert aurocs["onnx-int8"] >= 0.97 * aurocs["onnx-fp32"] and aurocs["tflite-int8"] >= 0.97 * aurocs["onnx-fp32"]


def test_known_defects_set_a_balanced_threshold_and_a_measured_miss_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_set(tmp_path / "d", good=24, defects=8, size=96, seed=5)
    out = tmp_path / "m"
    err = fit(["--good", str(tmp_path / "d" / "good"), "--defects", str(tmp_path / "d" / "defects"), "--out",
               str(out), "--bank", "128", "--folds", "3", "--threads", "1", "--latency-runs", "0"], capsys)  # fmt: skip
    card = (out / "MODEL_CARD.md").read_text()
    assert "Miss rate on the 8 known defects" in card and "misses on known defects" in err
    assert "unknown" not in card.split("## What it will do")[1].split("|")[0]


def test_a_fitted_model_judges_the_demo_parts_through_edge_agent_run(
    mosquitto: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 48 good parts, above the 30 the fit asks for: with 24 (which the fit warns about) the int8 ONNX file,
    # calibrated on those same 24, rejected 2 of the 12 demo good parts under onnxruntime 1.28-1.32 here
    # (1.07-1.20x its threshold) while fp32 and TFLite passed them; at 48 every variant passes them all
    write_set(tmp_path / "train", good=48, defects=0, size=256, seed=11)
    model = tmp_path / "model"
    fit(["--good", str(tmp_path / "train" / "good"), "--out", str(model), "--bank", "256", "--threads", "1",
         "--latency-runs", "0"], capsys)  # fmt: skip
    pipeline = {"name": "line1", "source": {"kind": "folder", "path": str(PARTS)}, "model": {"path": str(model)},
                "task": {"kind": "defect"}}  # fmt: skip
    path = agent_config(tmp_path, mosquitto.port, device={"site": "plant", "id": "line-1"}, pipelines=[pipeline])
    parts = sorted(p.name for p in PARTS.glob("*.jpg"))
    subscriber = Collector(mosquitto.host, mosquitto.port, PREFIX + "#")
    try:
        run_agent(path, tmp_path, 180)
        subscriber.wait_until(lambda s: len(s.json_on(PREFIX + "defect/result")) >= len(parts), 20)
        results, events = subscriber.json_on(PREFIX + "defect/result"), subscriber.json_on(PREFIX + "defect/event")
        snapshots = [next(iter(subscriber.by_topic(e["snapshot_topic"])), None) for e in events]
    finally:
        subscriber.stop()
    by_item = {r["data"]["item_id"]: r["data"] for r in results}
    assert sorted(by_item) == parts
    failed = sorted(item for item, data in by_item.items() if not data["passed"])
    assert sorted(e["subject"] for e in events) == failed
    assert all(j is not None and j.startswith(b"\xff\xd8\xff") for j in snapshots)
    defective = [p for p in parts if not p.endswith("_good.jpg")]
    good = [p for p in parts if p.endswith("_good.jpg")]
    assert len([p for p in defective if p in failed]) >= 0.75 * len(defective), failed
    assert len([p for p in good if p in failed]) <= 1, failed


def test_check_refuses_a_model_whose_memory_bank_or_cell_statistics_were_changed(
    fitted: tuple[Path, Path, str], tmp_path: Path
) -> None:
    import shutil

    from edge_agent.check import check_config
    from edge_agent.errors import ConfigError

    out, data, _err = fitted
    model = tmp_path / "model"
    shutil.copytree(out, model)
    pipeline = {"name": "line1", "source": {"kind": "folder", "path": str(data / "good")},
                "model": {"path": str(model)}, "task": {"kind": "defect"}}  # fmt: skip
    config = agent_config(tmp_path, 1883, pipelines=[pipeline])
    check_config(config)  # the fitted folder as written passes
    bank = model / "memory_bank_onnx-int8.npy"
    np.save(bank, np.load(bank) + 1.0)
    with pytest.raises(ConfigError, match=r"memory_bank_onnx-int8\.npy: sha256"):
        check_config(config)
    shutil.copyfile(out / "memory_bank_onnx-int8.npy", model / "memory_bank_onnx-int8.npy")
    check_config(config)
    cells = model / "cell_stats_onnx-int8.npy"
    np.save(cells, np.load(cells) * 2.0)
    with pytest.raises(ConfigError, match=r"cell_stats_onnx-int8\.npy: sha256"):
        check_config(config)


def test_a_bank_that_does_not_fit_the_backbone_is_refused_before_any_part(
    fitted: tuple[Path, Path, str], tmp_path: Path
) -> None:
    import shutil

    from edge_agent.config import OnnxRuntimeConfig
    from edge_agent.errors import ModelError
    from edge_agent.runtime.manifest import sha256_file
    from edge_agent.runtime.registry import load_model
    from edge_agent.tasks.base import TaskContext
    from edge_agent.tasks.defect.config import DefectTaskConfig
    from edge_agent.tasks.defect.task import DefectTask

    out, _data, _err = fitted
    model_dir = tmp_path / "model"
    shutil.copytree(out, model_dir)
    bank = model_dir / "memory_bank_onnx-int8.npy"
    np.save(bank, np.zeros((16, 64), np.float32))  # half the feature width, hash made to match
    manifest = yaml.safe_load((model_dir / "manifest.yaml").read_text())
    manifest["params"]["variants"]["onnx-int8"]["memory_bank"]["sha256"] = sha256_file(bank)
    (model_dir / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    model = load_model(model_dir, "onnx-int8", OnnxRuntimeConfig())
    task = DefectTask(DefectTaskConfig(kind="defect"), model, TaskContext("line", "site", "dev"))
    with pytest.raises(ModelError, match="does not fit its outputs"):
        task.validate_model()
