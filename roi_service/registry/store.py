"""Model versions kept beside the database: <root>/models/<name>/<version>.tar.gz and an index.json."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class RegistryError(ValueError):
    """An upload or lookup the registry refuses; the message says why (the API answers 400/404 with it)."""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    sha256: str
    size: int
    task: str
    created_at: str


def read_manifest(archive: bytes) -> dict[str, object]:
    """The manifest.yaml inside a model archive (at the top or in its one folder)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            names = [m for m in tar.getmembers() if m.isfile() and Path(m.name).name == "manifest.yaml"]
            member = min(names, key=lambda m: m.name.count("/"), default=None)
            if member is None or member.name.count("/") > 1:
                raise RegistryError("the archive holds no manifest.yaml at its top or in its one folder")
            handle = tar.extractfile(member)
            raw = yaml.safe_load(handle.read()) if handle else None
    except (tarfile.TarError, EOFError, OSError, yaml.YAMLError) as exc:
        raise RegistryError(f"not a model archive (.tar.gz of a model folder): {exc}") from exc
    if not isinstance(raw, dict):
        raise RegistryError("manifest.yaml is not a mapping")
    return raw


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    def add(self, archive: bytes) -> ModelVersion:
        manifest = read_manifest(archive)
        name, version = str(manifest.get("name", "")), str(manifest.get("version", ""))
        if not _NAME.match(name) or not _VERSION.match(version):
            raise RegistryError(f"manifest name {name!r} / version {version!r} are not valid registry names")
        with self._lock:
            index = self._index()
            if any(v["name"] == name and v["version"] == version for v in index):
                raise RegistryError(f"{name} {version} is already registered: raise the manifest's version")
            entry = ModelVersion(name, version, hashlib.sha256(archive).hexdigest(), len(archive),
                                 str(manifest.get("task", "")), datetime.now(timezone.utc).isoformat())  # fmt: skip
            _write_atomic(self.archive_path(name, version), archive)
            self._save_index([*index, asdict(entry)])
        return entry

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        return [ModelVersion(**v) for v in self._index() if name in (None, v["name"])]

    def get(self, name: str, version: str) -> ModelVersion:
        found = [v for v in self.versions(name) if v.version == version]
        if not found:
            raise RegistryError(f"{name} {version} is not in the registry")
        return found[0]

    def archive_path(self, name: str, version: str) -> Path:
        return self.root / "models" / name / f"{version}.tar.gz"

    def _index(self) -> list[dict[str, Any]]:
        path = self.root / "index.json"
        return list(json.loads(path.read_text())) if path.is_file() else []

    def _save_index(self, index: list[dict[str, Any]]) -> None:
        _write_atomic(self.root / "index.json", json.dumps(index, indent=1).encode())


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
