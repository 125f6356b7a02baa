"""Models delivered over the air, on the data volume: a staging slot, unpacked versions, per-pipeline state.

    <store>/staging/<name>-<version>-<sha12>.part   the download (resumed across tries)
    <store>/<name>/<version>/                       an unpacked model folder (manifest.yaml + files)
    <store>/state/<pipeline>.json                   current / previous / probation, written atomically

The current and the previous version of each pipeline stay on disk; older ones are removed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.errors import UpdateError
from edge_agent.runtime.manifest import MANIFEST_NAME

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Slot:
    name: str
    version: str
    path: str

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass
class PipelineState:
    current: Slot | None = None
    previous: Slot | None = None
    probation: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> PipelineState:
        current, previous = (Slot(**raw[k]) if raw.get(k) else None for k in ("current", "previous"))
        return cls(current, previous, bool(raw.get("probation")), list(raw.get("history", []))[-20:])


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def staging_file(self, name: str, version: str, sha256: str) -> Path:
        return self.root / "staging" / f"{name}-{version}-{sha256[:12]}.part"

    def unpack(self, archive: Path, name: str, version: str) -> Path:
        """Unpack into <name>/<version>/ through a temporary folder, so a half-unpacked model never exists."""
        target = self.root / name / version
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{version}-"))
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(tmp, filter="data")  # refuses absolute paths, .., links out and devices
        except (tarfile.TarError, OSError, EOFError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UpdateError(f"the archive cannot be unpacked: {exc}") from exc
        folder = _model_root(tmp)
        if folder is None:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UpdateError(f"the archive holds no {MANIFEST_NAME} (pack the model folder itself)")
        if target.exists():
            shutil.rmtree(target)
        folder.rename(target)
        shutil.rmtree(tmp, ignore_errors=True)
        return target

    def state(self, pipeline: str) -> PipelineState:
        path = self._state_path(pipeline)
        if not path.is_file():
            return PipelineState()
        try:
            return PipelineState.from_json(json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            logger.warning("model state %s is unreadable (%s): starting from the configured model", path, exc)
            return PipelineState()

    def save(self, pipeline: str, state: PipelineState) -> None:
        path = self._state_path(pipeline)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state-")
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(state), handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())  # a power cut must not leave a probation flag half written
        os.replace(tmp, path)

    def prune(self, name: str, keep: set[str]) -> None:
        """Remove versions of `name` that no pipeline runs or keeps to roll back to."""
        folder = self.root / name
        for version in folder.iterdir() if folder.is_dir() else []:
            if version.is_dir() and not version.name.startswith(".") and str(version) not in keep:
                shutil.rmtree(version, ignore_errors=True)

    def _state_path(self, pipeline: str) -> Path:
        return self.root / "state" / f"{pipeline}.json"


def _model_root(folder: Path) -> Path | None:
    if (folder / MANIFEST_NAME).is_file():
        return folder
    children = [p for p in folder.iterdir() if p.is_dir()]
    if len(children) == 1 and (children[0] / MANIFEST_NAME).is_file():
        return children[0]
    return None
