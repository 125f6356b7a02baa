"""`edge-agent check`: every broken config gives one line per problem with field, line and hint, exit 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.config_loader import load_config

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny-classifier"

GOOD = """\
device:
  site: shop-1
  id: cam-1
mqtt:
  host: broker.local
  port: 8883
pipelines:
  - name: line1
    source:
      kind: folder
      path: images
    model:
      path: model
    task:
      kind: classify
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(TINY, tmp_path / "model")
    (tmp_path / "images").mkdir()
    return tmp_path


def run_check(
    workdir: Path, text: str, capsys: pytest.CaptureFixture[str], command: str = "check", port: int = 0
) -> tuple[int, str]:
    """`edge-agent check` (or run) on `text`; the /metrics port is a free one unless the test names one."""
    path = workdir / "agent.yaml"
    path.write_text(text)
    with pytest.MonkeyPatch.context() as monkey:
        monkey.setenv("EDGE_AGENT__HTTP__PORT", str(port))
        code = main([command, str(path)])
    out = capsys.readouterr()
    return code, out.err + out.out


def test_good_config_passes(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_check(workdir, GOOD, capsys)
    assert code == 0, out
    assert "ok (1 pipeline(s): line1)" in out


BROKEN = {
    "unknown key": (GOOD.replace("  port: 8883", "  prot: 8883"), "mqtt.prot", 6, "did you mean 'port'?"),
    "wrong type": (GOOD.replace("port: 8883", "port: eighty"), "mqtt.port", 6, "plain number"),
    "missing required field": (GOOD.replace("  id: cam-1\n", ""), "device.id", 1, "add id:"),
    "negative threshold": (
        GOOD.replace("      kind: classify", "      kind: defect\n      threshold: -0.5"),
        "pipelines.0.task.threshold",
        16,
        "larger value",
    ),
    "bad source url form": (
        GOOD.replace("      kind: folder\n      path: images", "      kind: camera\n      url: ftp://cam/x"),
        "pipelines.0.source",
        9,
        None,
    ),
    "unknown source kind": (GOOD.replace("kind: folder", "kind: webcam"), "pipelines.0.source", 9, "one of"),
    "missing model folder": (GOOD.replace("path: model", "path: nowhere"), "pipelines.0.model.path", 13, "models list"),
    "threads below one": (
        GOOD.replace("      path: model", "      path: model\n      runtime: {kind: litert, threads: 0}"),
        "pipelines.0.model.runtime.threads",
        14,
        "larger value",
    ),
    "topic-unsafe device id": (GOOD.replace("id: cam-1", "id: cam/1"), "device.id", 3, None),
    "duplicate pipeline": (GOOD + GOOD[GOOD.index("  - name") :], "pipelines", 7, None),
    "image folder missing": (GOOD.replace("path: images", "path: gone"), "pipelines.0.source.path", 11, "relative"),
    "runtime cannot read the variant": (
        GOOD.replace("      path: model", "      path: model\n      variant: onnx-fp32\n      runtime: {kind: litert}"),
        "pipelines.0.model.variant",
        14,
        "tflite-int8",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_config_is_one_clear_line(case: str, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, field, line, hint = BROKEN[case]
    code, out = run_check(workdir, text, capsys)
    assert code == 2
    assert "Traceback" not in out
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert f"agent.yaml:{line}: {field}" in lines[0]
    if hint:
        assert hint in lines[0]


def test_hash_mismatch_is_refused(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = workdir / "model" / "model.int8.onnx"
    model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
    code, out = run_check(workdir, GOOD, capsys)
    assert code == 2
    assert "agent.yaml:13: pipelines.0.model.path" in out and "does not match the manifest" in out


def test_every_error_is_reported_not_just_the_first(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = GOOD.replace("port: 8883", "port: x").replace("id: cam-1", "id: cam-1\n  colour: red")
    code, out = run_check(workdir, text, capsys)
    assert code == 2
    assert len(out.strip().splitlines()) == 2


def test_yaml_syntax_error_names_the_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_check(workdir, GOOD.replace("  port: 8883", "  port: [8883"), capsys)
    assert code == 2
    assert "not valid YAML" in out and "Traceback" not in out


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "none.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_env_overrides_and_secret_files(workdir: Path) -> None:
    path = workdir / "agent.yaml"
    path.write_text(GOOD)
    secret = workdir / "mqtt_password"
    secret.write_text("s3cret\n")
    env = {
        "EDGE_AGENT__MQTT__HOST": "10.0.0.5",
        "EDGE_AGENT__MQTT__PORT": "1884",
        "EDGE_AGENT__MQTT__USERNAME": "dev1",
        "EDGE_AGENT__MQTT__PASSWORD_FILE": str(secret),
        "EDGE_AGENT__PIPELINES__0__MODEL__VARIANT": "onnx-fp32",
    }
    config = load_config(path, env)
    assert config.mqtt is not None
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.username) == ("10.0.0.5", 1884, "dev1")
    assert config.mqtt.password is not None and config.mqtt.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config)
    assert config.pipelines[0].model.variant == "onnx-fp32"
    assert config.pipelines[0].model.path == workdir / "model"  # relative to the config file


def test_env_override_errors_name_the_variable(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = workdir / "agent.yaml"
    path.write_text(GOOD)
    monkey = pytest.MonkeyPatch()
    monkey.setenv("EDGE_AGENT__MQTT__PORT", "not-a-port")
    try:
        code = main(["check", str(path)])
    finally:
        monkey.undo()
    err = capsys.readouterr().err
    assert code == 2
    assert "mqtt.port" in err and "set by env EDGE_AGENT__MQTT__PORT" in err


def test_schema_command_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "AgentConfig"
    assert "pipelines" in schema["properties"]


# ---------------------------------------------------------------- check refuses what run would refuse


def one_line_refusal(code: int, out: str, field: str, words: str) -> None:
    assert code == 2, out
    assert "Traceback" not in out
    problem = [line for line in out.strip().splitlines() if field in line]
    assert len(problem) == 1, out
    assert words in problem[0], problem[0]


def test_a_corrupt_model_whose_hash_matches_is_refused(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import hashlib

    model = workdir / "model" / "model.int8.onnx"
    broken = bytearray(model.read_bytes())
    broken[len(broken) // 3 : len(broken) // 3 + 200] = bytes(200)
    old = hashlib.sha256(model.read_bytes()).hexdigest()
    model.write_bytes(bytes(broken))
    manifest = workdir / "model" / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace(old, hashlib.sha256(bytes(broken)).hexdigest()))
    code, out = run_check(workdir, GOOD, capsys)
    one_line_refusal(code, out, "pipelines.0.model", "cannot load")


OUTBOX = GOOD.replace("pipelines:", "outbox:\n  path: {path}\npipelines:")


def test_an_outbox_path_that_cannot_be_created_is_refused(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "afile").write_text("not a folder")
    code, out = run_check(workdir, OUTBOX.format(path="afile/outbox.db"), capsys)
    one_line_refusal(code, out, "outbox.path", "not a writable folder")


def test_a_corrupt_outbox_file_is_refused_by_check_and_run(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "outbox.db").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 64)
    for command in ("check", "run"):
        code, out = run_check(workdir, OUTBOX.format(path="outbox.db"), capsys, command=command)
        one_line_refusal(code, out, "outbox.path", "outbox.db")


def test_missing_or_unreadable_tls_files_are_refused(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tls = GOOD.replace("  port: 8883", "  port: 8883\n  tls:\n    ca_file: {ca}")
    code, out = run_check(workdir, tls.format(ca="missing-ca.pem"), capsys)
    one_line_refusal(code, out, "mqtt.tls.ca_file", "not found")
    (workdir / "junk.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    code, out = run_check(workdir, tls.format(ca="junk.pem"), capsys)
    one_line_refusal(code, out, "mqtt.tls.ca_file", "not a PEM CA certificate")


def test_a_port_in_use_is_refused_by_check_and_run(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        for command in ("check", "run"):
            code, out = run_check(workdir, GOOD, capsys, command=command, port=port)
            one_line_refusal(code, out, "http.port", f"127.0.0.1:{port} cannot be used")
