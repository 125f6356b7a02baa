"""The task plugin template: preprocess -> run -> decode -> logic, over a batch of items."""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from edge_agent.messages import EventType, ResultData
from edge_agent.metrics import AgentMetrics
from edge_agent.runtime.registry import LoadedModel
from edge_agent.tasks.dashboard import Dashboard

logger = logging.getLogger(__name__)


@dataclass
class Item:
    """One unit of input: a camera frame (H x W x 3 BGR uint8) or a sensor window (T x C float32)."""

    data: np.ndarray
    captured_at: float
    source: str
    index: int
    meta: dict[str, Any] = field(default_factory=dict)
    received: float = field(default_factory=time.monotonic)  # when the source produced it (latency base)


@dataclass
class EventDraft:
    """An event before the envelope is added."""

    event: EventType
    subject: str
    severity: str = "warning"
    details: dict[str, Any] = field(default_factory=dict)
    snapshot_jpeg: bytes | None = None


@dataclass
class TaskOutput:
    """What the task logic makes of one item: a result (or None to publish nothing) and events."""

    data: ResultData | None
    events: list[EventDraft] = field(default_factory=list)


@dataclass(frozen=True)
class TaskContext:
    """What a task may know about where it runs."""

    pipeline: str
    site: str
    device_id: str
    metrics: AgentMetrics | None = None  # the daemon's metrics; None in benchmarks and replays


ConfigT = TypeVar("ConfigT")
DecodedT = TypeVar("DecodedT")


class Task(abc.ABC, Generic[ConfigT, DecodedT]):
    """A task plugin. Subclasses implement the four stages; the pipeline times each one.

    `max_batch` > 1 lets the pipeline hand over several queued items at once (sensor windows);
    camera tasks keep 1.
    """

    kind: ClassVar[str]
    dashboard: ClassVar[Dashboard] = Dashboard()  # what operators' screens show of this job (entities, events)
    max_batch: int = 1

    def __init__(self, config: ConfigT, model: LoadedModel, context: TaskContext) -> None:
        self.config = config
        self.model = model
        self.context = context

    @abc.abstractmethod
    def preprocess(self, items: Sequence[Item]) -> list[np.ndarray]:
        """Turn items into model inputs (the manifest's layout and normalisation)."""

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.model.runtime.run(inputs)

    @abc.abstractmethod
    def decode(self, outputs: list[np.ndarray], items: Sequence[Item]) -> list[DecodedT]:
        """Turn raw outputs into one decoded value per item (pure numpy)."""

    @abc.abstractmethod
    def logic(self, decoded: DecodedT, item: Item) -> TaskOutput:
        """Apply thresholds, smoothing and state; return the result and any events."""

    def set_threshold(self, name: str, value: float) -> None:
        """`cmd/set_threshold`; tasks with thresholds override this."""
        raise ValueError(f"task {self.kind} has no threshold {name!r}")

    def snapshot(self) -> bytes | None:
        """`cmd/snapshot`: a JPEG of the last frame, for tasks that see images."""
        return None

    def items_label(self) -> str:
        return "items"

    def observe(self, data: ResultData) -> Mapping[str, int]:
        """Set this job's dashboard gauges from one published result; return what it adds to the period's counts.

        The pipeline sums the counts over a metrics period (they survive a model swap, the task does not)
        and hands them to `figures` when the metrics message is built.
        """
        return {}

    def figures(self, counts: Mapping[str, int], items: int) -> dict[str, float]:
        """This job's figures for the metrics message, from the period's summed counts and items."""
        return dict(counts)
