"""Staged rollout of a model version: 20 %, then 50 %, then every device, chosen stably by device id.

A stage advances only when every device in it reports a passed probation (`promoted` on its retained
`model` topic); one `failed` or `rolled_back` stops the rollout, and the devices of the rollout that
already run the new version are sent the version they ran before. State lives in rollouts.json.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from roi_service.registry.store import ModelRegistry, RegistryError, _write_atomic

logger = logging.getLogger(__name__)
STAGES = (0.2, 0.5, 1.0)
Send = Callable[[str, dict[str, Any]], None]  # (site/device, cmd/model_update args)


def stage_order(devices: list[str]) -> list[str]:
    """The order devices join a rollout: by a hash of their id, so the first 20 % stay the first 20 %."""
    return sorted(set(devices), key=lambda d: hashlib.sha256(d.encode()).hexdigest())


def stage_size(count: int, share: float) -> int:
    return max(1, math.ceil(count * share - 1e-9))


@dataclass
class DeviceRollout:
    device: str
    stage: int
    status: str = "waiting"  # waiting | sent | <device step> | promoted | failed | reverting | reverted
    detail: str = ""


@dataclass
class Rollout:
    id: str
    name: str
    version: str
    rollback_to: str | None
    stages: list[float]
    devices: list[DeviceRollout]
    stage: int = 0
    state: str = "running"  # running | completed | stopped
    reason: str = ""
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def members(self, stage: int) -> list[DeviceRollout]:
        return [d for d in self.devices if d.stage <= stage]


class RolloutEngine:
    """Decides what each device is sent; `send` publishes the command, `archive_url` says where to fetch."""

    def __init__(self, registry: ModelRegistry, send: Send, archive_url: Callable[[str, str], str]) -> None:
        self.registry = registry
        self.send = send
        self.archive_url = archive_url
        self._lock = threading.Lock()
        self._path = registry.root / "rollouts.json"
        self.rollouts = [self._load(r) for r in (json.loads(self._path.read_text()) if self._path.is_file() else [])]

    def start(self, name: str, version: str, devices: list[str], rollback_to: str | None = None) -> Rollout:
        self.registry.get(name, version)
        if rollback_to is not None:
            self.registry.get(name, rollback_to)
        order = stage_order(devices)
        if not order:
            raise RegistryError("a rollout needs at least one device (site/device)")
        with self._lock:
            if any(r.state == "running" and r.name == name for r in self.rollouts):
                raise RegistryError(f"a rollout of {name} is running: wait for it or let it stop")
            cut = [stage_size(len(order), share) for share in STAGES]
            stage_of = [next(k for k, size in enumerate(cut) if i < size) for i in range(len(order))]
            rollout = Rollout(f"{name}-{version}-{len(self.rollouts) + 1}", name, version, rollback_to,
                              list(STAGES), [DeviceRollout(d, s) for d, s in zip(order, stage_of)])  # fmt: skip
            self.rollouts.append(rollout)
            self._enter_stage(rollout)
            self._save()
        return rollout

    def on_update(self, device: str, update: dict[str, Any]) -> None:
        """A device's `model` topic changed: move its rollout on, stop it, or revert."""
        with self._lock:
            for rollout in self.rollouts:
                entry = next((d for d in rollout.devices if d.device == device), None)
                if entry is not None and update.get("name") == rollout.name and rollout.state != "completed":
                    self._apply(rollout, entry, update)
            self._save()

    def _apply(self, rollout: Rollout, entry: DeviceRollout, update: dict[str, Any]) -> None:
        step, version = str(update.get("step")), str(update.get("version"))
        if version == rollout.rollback_to and entry.status == "reverting":
            entry.status = "reverted" if step == "promoted" else entry.status
            return
        if version != rollout.version or entry.status in ("waiting", "reverting", "reverted"):
            return
        entry.status, entry.detail = step, str(update.get("reason", ""))
        if step in ("failed", "rolled_back"):
            self._stop(rollout, f"{entry.device}: {step}: {entry.detail}")
        elif step == "promoted" and rollout.state == "stopped":
            self._revert(rollout, entry)
        elif step == "promoted" and all(d.status == "promoted" for d in rollout.members(rollout.stage)):
            self._advance(rollout)

    def _advance(self, rollout: Rollout) -> None:
        if rollout.stage + 1 >= len(rollout.stages):
            rollout.state = "completed"
            logger.info("rollout %s completed", rollout.id)
            return
        rollout.stage += 1
        self._enter_stage(rollout)

    def _command(self, name: str, version: str) -> dict[str, Any]:
        found = self.registry.get(name, version)
        return {"name": found.name, "version": found.version, "sha256": found.sha256, "size": found.size,
                "source": self.archive_url(found.name, found.version)}  # fmt: skip

    def _enter_stage(self, rollout: Rollout) -> None:
        args = self._command(rollout.name, rollout.version)
        for entry in rollout.members(rollout.stage):
            if entry.status == "waiting":
                entry.status = "sent"
                self.send(entry.device, args)
        share = round(rollout.stages[rollout.stage] * 100)
        logger.info("rollout %s: stage %d (%d%%)", rollout.id, rollout.stage + 1, share)

    def _stop(self, rollout: Rollout, reason: str) -> None:
        if rollout.state == "stopped":
            return
        rollout.state, rollout.reason = "stopped", reason
        logger.warning("rollout %s stopped: %s", rollout.id, reason)
        for entry in rollout.devices:
            if entry.status == "promoted":
                self._revert(rollout, entry)

    def _revert(self, rollout: Rollout, entry: DeviceRollout) -> None:
        if rollout.rollback_to is None:
            entry.detail = "kept: the rollout names no version to go back to"
            return
        entry.status = "reverting"
        self.send(entry.device, self._command(rollout.name, rollout.rollback_to))

    def _save(self) -> None:
        _write_atomic(self._path, json.dumps([asdict(r) for r in self.rollouts], indent=1).encode())

    @staticmethod
    def _load(raw: dict[str, Any]) -> Rollout:
        devices = [DeviceRollout(**d) for d in raw.pop("devices")]
        return Rollout(**raw, devices=devices)
