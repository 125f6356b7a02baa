"""`edge-agent bench` tiny mode on the test classifier: schema-valid JSON, report from the JSON, broken models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench import cli, peers
from bench.latency import Case, run_isolated
from bench.report import markdown
from edge_agent import messages as m

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "data" / "tiny-classifier"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """One tiny run: a good model, and a folder of a model with a corrupted file, a broken and a missing manifest."""
    tmp = tmp_path_factory.mktemp("bench")
    corrupt = tmp / "models" / "corrupt-classifier"
    shutil.copytree(TINY, corrupt)
    (corrupt / "model.int8.tflite").write_bytes(b"not a model")
    broken = tmp / "models" / "broken-manifest"
    broken.mkdir()
    (broken / "manifest.yaml").write_text("name: [unclosed\n")
    (tmp / "models" / "no-manifest").mkdir()
    out = tmp / "out"
    argv = ["--mode", "tiny", "--threads", "1", "--in-process", "--out", str(out),
            "--models", str(TINY), str(tmp / "models")]  # fmt: skip
    assert cli.main(argv) == 0
    return json.loads((out / cli.RESULT_NAME).read_text()), out


def _model(result: dict[str, Any], name: str) -> dict[str, Any]:
    return next(x for x in result["models"] if x["name"] == name)


def test_result_matches_the_schema_and_the_schema_rejects_a_broken_result(run: tuple[dict[str, Any], Path]) -> None:
    result, _ = run
    assert cli.validate(result) == []
    damaged = dict(result)
    del damaged["fingerprint"]
    assert any("fingerprint" in p for p in cli.validate(damaged))
    case = _model(result, "tiny-classifier")["cases"][0]
    bad_case = {**case, "e2e": {**case["e2e"], "under_target_ratio": 1.5}}
    bad = {**result, "models": [{**result["models"][0], "cases": [bad_case]}]}
    assert cli.validate(bad) != []


def test_every_file_is_timed_beside_its_bare_run(run: tuple[dict[str, Any], Path]) -> None:
    result, _ = run
    model = _model(result, "tiny-classifier")
    assert {c["variant"] for c in model["cases"]} == {"onnx-fp32", "onnx-int8", "tflite-int8"}
    assert model["not_shipped"] == ["tflite-fp32"]
    for c in model["cases"]:
        assert c["status"] == "ok", c.get("error")
        assert c["iterations"] == cli.MODES["tiny"][0] == len(c["samples_ms"]["e2e"]) == len(c["samples_ms"]["bare"])
        assert c["pipeline_errors"] == 0
        assert c["e2e"]["p50_ms"] <= c["e2e"]["p95_ms"] <= c["e2e"]["p99_ms"] <= c["e2e"]["max_ms"]
        assert set(c["stages"]) == {"source", "preprocess", "inference", "decode", "logic", "publish"}
        assert c["memory"]["peak_rss_mb"] > 0
    assert model["files"]["onnx-int8"]["sha256_ok"] is True
    assert result["fingerprint"]["models"]["tiny-classifier"]["onnx-int8"] == model["files"]["onnx-int8"]["sha256"]


def test_accuracy_and_verdict_per_job(run: tuple[dict[str, Any], Path]) -> None:
    result, _ = run
    model = _model(result, "tiny-classifier")
    acc = model["accuracy"]
    assert acc["status"] == "ok" and acc["reference"] == "onnx-fp32"
    assert acc["variants"]["onnx-fp32"]["ratio_to_fp32"] == 1.0
    assert model["verdict"]["state"] in ("pass", "fail")
    assert result["verdicts"]["tiny-classifier"] == model["verdict"]["pass"]


def test_broken_models_are_reported_and_the_run_goes_on(run: tuple[dict[str, Any], Path]) -> None:
    result, _ = run
    corrupt = next(x for x in result["models"] if x["path"].endswith("corrupt-classifier"))
    tflite = next(c for c in corrupt["cases"] if c["variant"] == "tflite-int8")
    assert tflite["status"] == "error" and "sha256" in tflite["error"]
    assert corrupt["files"]["tflite-int8"]["sha256_ok"] is False
    assert corrupt["verdict"]["state"] == "fail"  # a shipped int8 file that cannot run fails its job
    broken = _model(result, "broken-manifest")
    assert broken["status"] == "error" and "manifest.yaml" in broken["error"]
    assert broken["cases"] == [] and broken["verdict"] is None
    empty = _model(result, "no-manifest")
    assert empty["status"] == "error" and "no manifest" in empty["error"]


def test_report_is_generated_from_the_json_alone(run: tuple[dict[str, Any], Path]) -> None:
    result, out = run
    report = (out / cli.REPORT_NAME).read_text()
    plots = sorted(p.name for p in out.glob("*.png"))
    assert "latency_tiny-classifier.png" in plots
    assert markdown(result, plots) == report
    case = next(c for c in _model(result, "tiny-classifier")["cases"] if c["variant"] == "onnx-int8")
    row = next(line for line in report.splitlines() if line.startswith("| onnx-int8 | onnxruntime | 1 |"))
    assert f"| {case['e2e']['p95_ms']:.2f} |" in row
    assert "Load average" in report and "broken-manifest" in report


def test_summary_fits_the_mqtt_contract(run: tuple[dict[str, Any], Path]) -> None:
    from bench.publish import build_message

    result, _ = run
    message = build_message(result, "shop-1", "pi-01", seq=7)
    parsed = m.MESSAGE_ADAPTER.validate_json(message.model_dump_json())
    assert isinstance(parsed, m.BenchResultMessage)
    assert parsed.verdicts == result["verdicts"]
    assert all("samples_ms" not in row for row in parsed.summary)


def test_a_case_runs_in_its_own_process_and_a_missing_variant_is_an_error() -> None:
    ok = run_isolated(Case(str(TINY), "onnx-int8", 1, iterations=4, warmup=1, pool=2), timeout_s=120)
    assert ok["status"] == "ok" and ok["iterations"] == 4
    missing = run_isolated(Case(str(TINY), "onnx-fp16", 1, iterations=4, warmup=1, pool=2), timeout_s=120)
    assert missing["status"] == "error" and "onnx-fp16" in missing["error"]


def test_peer_comparison_is_skipped_with_a_note_when_ultralytics_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peers.importlib.util, "find_spec", lambda name: None)
    out = peers.compare([], cli.settings_from(cli._parser().parse_args(["--mode", "tiny"])))
    assert out["status"] == "skipped" and "not installed" in out["note"]


def test_user_mistakes_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["--publish", "--out", str(tmp_path)]) == 2
    assert "--config" in capsys.readouterr().err
    assert cli.main(["--models", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["--threads", "1,x", "--out", str(tmp_path)]) == 2
    assert "--threads" in capsys.readouterr().err
    assert not (tmp_path / cli.RESULT_NAME).exists()


def test_report_and_plots_are_regenerated_from_a_saved_json(run: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    _, out = run
    assert cli.main(["--from-json", str(out / cli.RESULT_NAME), "--out", str(tmp_path)]) == 0
    assert (tmp_path / cli.REPORT_NAME).read_text() == (out / cli.REPORT_NAME).read_text()
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(p.name for p in out.glob("*.png"))
