"""What keeps a device honest about where it runs: no silent CPU fallback, /metrics behind a token off loopback."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from edge_agent.config import OnnxRuntimeConfig
from edge_agent.errors import ConfigError, RuntimeUnavailableError
from edge_agent.httpserver import HealthServer, read_token
from edge_agent.runtime.onnx import choose_providers, require_accelerator

CPU_ONLY = ["CPUExecutionProvider"]


def test_tensorrt_profile_on_a_cpu_only_build_refuses_to_start() -> None:
    config = OnnxRuntimeConfig(providers=["tensorrt", "cuda", "cpu"])
    with pytest.raises(RuntimeUnavailableError) as caught:
        choose_providers(config.providers, CPU_ONLY, config)
    assert "TensorrtExecutionProvider, CUDAExecutionProvider" in str(caught.value)
    assert "--runtime nvidia" in str(caught.value) and "fallback: cpu" in str(caught.value)


def test_explicit_cpu_fallback_runs_on_the_cpu() -> None:
    config = OnnxRuntimeConfig(providers=["tensorrt", "cuda", "cpu"], fallback="cpu")
    assert choose_providers(config.providers, CPU_ONLY, config) == ["CPUExecutionProvider"]


@pytest.mark.parametrize("providers", [["auto"], ["cpu"]])
def test_cpu_and_auto_never_need_an_accelerator(providers: list[str]) -> None:
    require_accelerator(OnnxRuntimeConfig(providers=providers), CPU_ONLY)  # type: ignore[arg-type]


def test_one_installed_accelerator_is_enough() -> None:
    config = OnnxRuntimeConfig(providers=["tensorrt", "cuda"])
    chosen = choose_providers(config.providers, ["CUDAExecutionProvider", *CPU_ONLY], config)
    assert chosen == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def get(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_metrics_need_the_token_when_one_is_set() -> None:
    registry = CollectorRegistry()
    Counter("probe", "probe", registry=registry).inc()
    server = HealthServer("127.0.0.1", 0, registry, lambda: (True, {}), token="t0ken")
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert get(f"{base}/metrics") == 401
        assert get(f"{base}/metrics", "wrong") == 401
        assert get(f"{base}/metrics", "t0ken") == 200
        assert get(f"{base}/healthz") == 200  # the container's own health check carries no token
    finally:
        server.stop()


def test_token_file_must_exist_and_hold_a_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing: http.token_file: cannot read it"):
        read_token(tmp_path / "missing")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match=r"http\.token_file: the file is empty"):
        read_token(tmp_path / "empty")
    (tmp_path / "token").write_text("abc\n")
    assert read_token(tmp_path / "token") == "abc"
