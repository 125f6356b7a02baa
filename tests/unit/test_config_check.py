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


def run_check(workdir: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = workdir / "agent.yaml"
    path.write_text(text)
    code = main(["check", str(path)])
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
