"""The task seam: a job's gauges and period figures come from its own Task, the pipeline knows no job by name."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from edge_agent.config import ClassifyTaskConfig, FolderSourceConfig, OnnxRuntimeConfig
from edge_agent.messages import ClassifyData, ResultData
from edge_agent.metrics import AgentMetrics
from edge_agent.pipeline import MessageFactory, Pipeline
from edge_agent.runtime.registry import load_model
from edge_agent.sinks import Outgoing, Sink
from edge_agent.sources.base import create_source
from edge_agent.sources.runner import Backoff, Handover, SourceRunner
from edge_agent.tasks.base import Item, TaskContext
from edge_agent.tasks.classify import ClassifyTask
from tests.support.agent import TINY


class LabelTally(ClassifyTask):
    """A fourth job in a test: the share of each top label in the period, without touching pipeline.py."""

    kind = "label_tally"

    def observe(self, data: ResultData) -> Mapping[str, int]:
        return {data.label: 1} if isinstance(data, ClassifyData) else {}

    def figures(self, counts: Mapping[str, int], items: int) -> dict[str, float]:
        return {f"share_{label}": n / items for label, n in counts.items()}


class Collect(Sink):
    name = "collect"

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []

    def publish(self, messages: list[Outgoing]) -> None:
        self.results += [json.loads(o.payload) for o in messages if o.topic.endswith("/result")]


class Numbered(Collect):
    """Stands for the outbox: its messages are numbered."""

    name = "numbered"
    numbered = True


class Seqs:
    """The outbox's counter: the next seq, and the last one handed out."""

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last += 1
        return self.last

    def current(self) -> int:
        return self.last


def make_pipeline(
    tmp_path: Path, metrics: AgentMetrics, sink: Sink, factory: MessageFactory | None = None, name: str = "p"
) -> tuple[Pipeline, LabelTally]:
    model = load_model(TINY, None, OnnxRuntimeConfig(kind="onnxruntime"))
    task = LabelTally(ClassifyTaskConfig(kind="classify"), model, TaskContext(name, "s", "d", metrics))
    (tmp_path / name).mkdir()
    source = create_source(name, FolderSourceConfig(kind="folder", path=tmp_path / name), None, metrics)
    runner = SourceRunner(source, Handover(4, False), metrics, Backoff(0.1, 0.2))
    seq = iter(range(1, 10_000))
    factory = factory or MessageFactory("s", "d", lambda: next(seq))
    return Pipeline(name, task, runner, [sink], metrics, factory), task


def test_a_job_defines_its_own_period_figures_and_they_reset(tmp_path: Path) -> None:
    metrics = AgentMetrics(CollectorRegistry())
    sink = Collect()
    pipeline, _ = make_pipeline(tmp_path, metrics, sink)
    rng = np.random.default_rng(0)
    for i in range(12):
        frame = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        pipeline.process([Item(frame, time.time(), "test", i)])
    assert len(sink.results) == 12
    labels = [r["data"]["label"] for r in sink.results]
    assert pipeline.figures() == {f"share_{label}": labels.count(label) / 12 for label in set(labels)}
    pipeline.latency.reset()
    assert pipeline.figures() == {}


def test_a_pipeline_that_sends_nothing_through_the_outbox_takes_no_seq(tmp_path: Path) -> None:
    metrics, seqs = AgentMetrics(CollectorRegistry()), Seqs()
    factory = MessageFactory("s", "d", seqs.next, seqs.current)
    sent, local = Numbered(), Collect()  # an MQTT pipeline and a file-only one on the same device
    to_cloud, _ = make_pipeline(tmp_path, metrics, sent, factory, "cloud")
    to_file, _ = make_pipeline(tmp_path, metrics, local, factory, "file")
    rng = np.random.default_rng(1)
    for i in range(10):
        for pipeline in (to_cloud, to_file):
            pipeline.process([Item(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), time.time(), "test", i)])
    assert [r["seq"] for r in sent.results] == list(range(1, 11))  # no gap for the cloud to count as lost
    assert [r["seq"] for r in local.results] == list(range(1, 11))  # each repeats the last seq handed out
    assert seqs.last == 10
