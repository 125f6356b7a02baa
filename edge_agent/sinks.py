"""Where a pipeline's messages go. Each sink is isolated: one that fails never stops the others."""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_agent.outbox import Outbox

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outgoing:
    """A serialized message: topic leaf below the device root, payload, and whether brokers retain it."""

    topic: str
    payload: bytes
    kind: str
    retain: bool = False


class Sink(abc.ABC):
    name: str
    numbered = False  # its messages carry the outbox's seq, which the cloud checks for gaps (each gap is a loss)

    @abc.abstractmethod
    def publish(self, messages: list[Outgoing]) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources."""


class MqttSink(Sink):
    """Commits to the durable outbox (one transaction per batch); the forwarder sends after the commit."""

    name = "mqtt"
    numbered = True

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def publish(self, messages: list[Outgoing]) -> None:
        self.outbox.put_many([(m.topic, m.payload) for m in messages])


class LogSink(Sink):
    """One log line per result and per event: what an operator watching the demo reads."""

    name = "log"

    def publish(self, messages: list[Outgoing]) -> None:
        for message in messages:
            if message.kind == "snapshot":
                logger.info("%s: %d bytes of JPEG", message.topic, len(message.payload))
            else:
                logger.info("%s %s", message.topic, message.payload.decode("utf-8", "replace"))


class JsonlSink(Sink):
    """Appends one JSON line per message to a file (snapshots are written beside it)."""

    name = "jsonl"

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("ab")

    def publish(self, messages: list[Outgoing]) -> None:
        for message in messages:
            if message.kind == "snapshot":
                target = self.path.parent / (message.topic.replace("/", "_") + ".jpg")
                target.write_bytes(message.payload)
            else:
                self._handle.write(message.payload + b"\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()
