"""A real MLflow tracking server (scripts/ensure_mlflow.sh) with a SQLite backend and a local artifact store,
and the REST calls a training job makes to register a model archive and point an alias at it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def mlflow_executable() -> str:
    found = ROOT / ".venv-mlflow" / "bin" / "mlflow"
    if not found.exists() and shutil.which("mlflow") is None:
        pytest.skip("no MLflow server: run scripts/ensure_mlflow.sh")
    return str(found) if found.exists() else str(shutil.which("mlflow"))


@contextlib.contextmanager
def mlflow_server(workdir: Path, timeout_s: float = 120.0) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    cmd = [mlflow_executable(), "server", "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
           "--artifacts-destination", str(workdir / "artifacts"), "--serve-artifacts",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir / "mlflow.log").open("ab") as log:
        # Its own session: `mlflow server` runs uvicorn as a child, and both must go at the end.
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, cwd=workdir, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"MLflow did not start: {(workdir / 'mlflow.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def call(url: str, endpoint: str, body: dict[str, Any] | None = None, method: str = "POST") -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{url}/api/2.0/mlflow/{endpoint}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        found: dict[str, Any] = json.loads(response.read() or b"{}")
    return found


def register(url: str, name: str, archive: bytes, alias: str) -> str:
    """Log the archive as a run artifact, register it as a new version of `name`, point `alias` at it."""
    run = call(url, "runs/create", {"experiment_id": "0"})["run"]["info"]
    artifacts = run["artifact_uri"]
    assert artifacts.startswith("mlflow-artifacts:/"), artifacts
    path = f"{artifacts.removeprefix('mlflow-artifacts:/')}/model/model.tar.gz"
    put = urllib.request.Request(f"{url}/api/2.0/mlflow-artifacts/artifacts/{path}", data=archive, method="PUT")
    with urllib.request.urlopen(put, timeout=30):
        pass
    with contextlib.suppress(urllib.error.HTTPError):  # already registered by an earlier version
        call(url, "registered-models/create", {"name": name})
    version = call(url, "model-versions/create", {"name": name, "source": f"{artifacts}/model",
                                                  "run_id": run["run_id"]})["model_version"]["version"]  # fmt: skip
    call(url, "registered-models/alias", {"name": name, "alias": alias, "version": str(version)})
    return str(version)
