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


def make_pipeline(tmp_path: Path, metrics: AgentMetrics, sink: Sink) -> tuple[Pipeline, LabelTally]:
    model = load_model(TINY, None, OnnxRuntimeConfig(kind="onnxruntime"))
    task = LabelTally(ClassifyTaskConfig(kind="classify"), model, TaskContext("p", "s", "d", metrics))
    (tmp_path / "in").mkdir()
    source = create_source("p", FolderSourceConfig(kind="folder", path=tmp_path / "in"), None, metrics)
    runner = SourceRunner(source, Handover(4, False), metrics, Backoff(0.1, 0.2))
    seq = iter(range(1, 10_000))
    return Pipeline("p", task, runner, [sink], metrics, MessageFactory("s", "d", lambda: next(seq))), task


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
