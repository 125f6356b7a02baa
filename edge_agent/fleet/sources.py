"""Where an update's archive comes from: an https URL as given, or MLflow's model registry over its REST API.

`models:/shelf-detector@production` (an alias) or `models:/shelf-detector/3` (a version) is resolved
with two calls the MLflow tracking server answers, so the device needs no `mlflow` package:

    GET /api/2.0/mlflow/registered-models/alias?name=N&alias=A          -> model_version.version
    GET /api/2.0/mlflow/model-versions/get-download-uri?name=N&version=V -> artifact_uri
    GET /api/2.0/mlflow-artifacts/artifacts/<path>/model.tar.gz          (server run with --serve-artifacts)
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.errors import UpdateError

ARCHIVE = "model.tar.gz"


@dataclass(frozen=True)
class Resolved:
    url: str
    headers: dict[str, str]
    detail: str


class MlflowRegistry:
    """Resolves models:/ references against one MLflow tracking server."""

    def __init__(self, uri: str, token_file: Path | None, context: ssl.SSLContext | None, timeout_s: float = 15.0):
        self.uri = uri.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"} if token_file else {}
        self.context = context if uri.startswith("https://") else None
        self.timeout_s = timeout_s

    def resolve(self, ref: str) -> Resolved:
        name, version = self._version(ref.removeprefix("models:/"))
        uri = self._get("model-versions/get-download-uri", {"name": name, "version": version})["artifact_uri"]
        prefix = "mlflow-artifacts:/"
        if not uri.startswith(prefix):
            raise UpdateError(f"{ref}: artifacts at {uri} are not served by the tracking server (--serve-artifacts)")
        path = urllib.parse.quote(f"{uri.removeprefix(prefix).strip('/')}/{ARCHIVE}")
        url = f"{self.uri}/api/2.0/mlflow-artifacts/artifacts/{path}"
        return Resolved(url, self.headers, f"{name} version {version}")

    def _version(self, ref: str) -> tuple[str, str]:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            found = self._get("registered-models/alias", {"name": name, "alias": alias})
            return name, str(found["model_version"]["version"])
        name, _, version = ref.partition("/")
        return name, version

    def _get(self, endpoint: str, params: dict[str, str]) -> dict[str, Any]:
        url = f"{self.uri}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, headers=self.headers)  # noqa: S310 - the configured server
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s, context=self.context) as response:  # noqa: S310
                found: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read(300).decode("utf-8", "replace")
            raise UpdateError(f"MLflow {endpoint} {params}: HTTP {exc.code} {detail}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise UpdateError(f"MLflow at {self.uri} cannot be reached: {getattr(exc, 'reason', exc)}") from exc
        return found


def resolve_source(source: str, mlflow: MlflowRegistry | None) -> Resolved:
    if not source.startswith("models:/"):
        return Resolved(source, {}, source)
    if mlflow is None:
        raise UpdateError(f"{source} is a registry reference but fleet.mlflow_uri is not set")
    return mlflow.resolve(source)
