"""The source interface and the factory table.

A source is opened, read and closed by a SourceRunner thread (see sources/runner.py), which owns
reconnects and back-pressure. Cameras keep only the latest frame (a stale frame is worth
nothing); sensor windows and triggered items go through a bounded queue that never drops
silently (a full queue is counted and logged).
"""

from __future__ import annotations

import abc
import importlib
from typing import Any, ClassVar

from edge_agent.metrics import AgentMetrics
from edge_agent.sources.windowing import WindowSpec
from edge_agent.tasks.base import Item


class Source(abc.ABC):
    """open() connects, read() returns the next Item or None when nothing is ready within timeout_s.

    read() raises SourceError when the source is lost (the runner reconnects with backoff) and
    SourceClosed when it has ended for good. Malformed records are skipped, counted in
    metrics.input_errors and logged, never raised.
    """

    kind: ClassVar[str]
    keep_latest: ClassVar[bool] = False

    def __init__(self, name: str, config: Any, window: WindowSpec | None, metrics: AgentMetrics) -> None:
        self.name = name
        self.config = config
        self.window = window
        self.metrics = metrics

    @abc.abstractmethod
    def open(self) -> None: ...

    @abc.abstractmethod
    def read(self, timeout_s: float) -> Item | None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def describe(self) -> str:
        return self.kind


SOURCES: dict[str, tuple[str, str]] = {
    "camera": ("edge_agent.sources.camera", "CameraSource"),
    "folder": ("edge_agent.sources.folder", "FolderSource"),
    "csv": ("edge_agent.sources.csv_replay", "CsvReplaySource"),
    "mqtt_sensor": ("edge_agent.sources.mqtt_sensor", "MqttSensorSource"),
    "modbus": ("edge_agent.sources.modbus", "ModbusSource"),
}


def create_source(name: str, config: Any, window: WindowSpec | None, metrics: AgentMetrics) -> Source:
    module_name, attr = SOURCES[config.kind]
    cls = getattr(importlib.import_module(module_name), attr)
    source: Source = cls(name, config, window, metrics)
    return source
