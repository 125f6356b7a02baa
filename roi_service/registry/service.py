"""The registry as roi_service runs it: versions on disk, rollouts, and the devices' reported models."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from roi_service.config import MqttSettings
from roi_service.registry.link import RolloutLink
from roi_service.registry.rollout import RolloutEngine
from roi_service.registry.store import ModelRegistry


class RegistryService:
    """`base_url` is how devices reach this service (their downloads: <base_url>/registry/archive/...)."""

    def __init__(self, root: Path, base_url: str, mqtt: MqttSettings | None) -> None:
        self.registry = ModelRegistry(root)
        self.base_url = base_url.rstrip("/")
        self.link = RolloutLink(mqtt, self.on_model) if mqtt is not None else None
        self.engine = RolloutEngine(self.registry, self._send, self.archive_url)
        self.devices: dict[str, dict[str, Any]] = {}  # site/device -> last model message
        self._lock = threading.Lock()

    def start(self) -> None:
        if self.link is not None:
            self.link.start()

    def stop(self) -> None:
        if self.link is not None:
            self.link.stop()

    def archive_url(self, name: str, version: str) -> str:
        return f"{self.base_url}/registry/archive/{name}/{version}.tar.gz"

    def on_model(self, device: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self.devices[device] = payload
        update = payload.get("update")
        if isinstance(update, dict):
            self.engine.on_update(device, update)

    def devices_running(self, name: str) -> list[str]:
        with self._lock:
            return sorted(d for d, p in self.devices.items() if any(m.get("name") == name for m in p.get("models", [])))

    def device_rows(self) -> list[dict[str, Any]]:
        """Per device: what each pipeline runs and the last update step (the dashboard's fleet table)."""
        with self._lock:
            items = sorted(self.devices.items())
        rows = []
        for device, payload in items:
            update = payload.get("update") or {}
            for model in payload.get("models", []):
                rows.append({"device": device, "pipeline": model.get("pipeline"), "model": model.get("name"),
                             "version": model.get("version"), "update_step": update.get("step"),
                             "update_reason": update.get("reason", "")})  # fmt: skip
        return rows

    def _send(self, device: str, args: dict[str, Any]) -> None:
        if self.link is None:
            raise RuntimeError("the registry has no broker link: rollouts need ROI_MQTT_HOST")
        self.link.command(device, args)
