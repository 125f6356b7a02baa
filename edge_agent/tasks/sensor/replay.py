"""Offline replay of a recording through the real task (load_model -> preprocess -> run -> decode -> logic)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edge_agent.config import LiteRTConfig, OnnxRuntimeConfig, RuntimeConfig
from edge_agent.runtime.registry import load_model
from edge_agent.tasks.base import EventDraft, Item, TaskContext
from edge_agent.tasks.sensor.config import SensorAnomalyTaskConfig
from edge_agent.tasks.sensor.fitting import sliding
from edge_agent.tasks.sensor.task import SensorAnomalyTask


@dataclass
class ReplayResult:
    """Per-sample score, likelihood (NaN without a calibration or before the first full window) and debounced
    state (0 before the first full window), the events raised, and the likelihood of every window in order."""

    scores: np.ndarray
    predicted: np.ndarray
    events: list[EventDraft] = field(default_factory=list)
    likelihood: np.ndarray = field(default_factory=lambda: np.zeros(0))


def runtime_for(variant: str, threads: int = 1) -> RuntimeConfig:
    """The runtime that reads a variant's file format, with an explicit thread budget."""
    if variant.startswith("tflite"):
        return LiteRTConfig(kind="litert", threads=threads)
    return OnnxRuntimeConfig(intra_op_threads=threads)


def make_task(
    model_dir: Path, variant: str, config: SensorAnomalyTaskConfig, name: str = "replay"
) -> SensorAnomalyTask:
    model = load_model(model_dir, variant, runtime_for(variant))
    return SensorAnomalyTask(config, model, TaskContext(pipeline=name, site="bench", device_id="bench"))


def replay(task: SensorAnomalyTask, timestamps: np.ndarray, values: np.ndarray) -> ReplayResult:
    """Score every window (stride 1) ending at each sample, in order, through the task's four stages."""
    size = task.params.size
    scores = np.zeros(len(values), dtype=np.float64)
    likelihood = np.full(len(values), np.nan)
    predicted = np.zeros(len(values), dtype=np.int8)
    events: list[EventDraft] = []
    windows = sliding(values.astype(np.float32), size)
    steps = np.diff(timestamps.astype(np.float64))
    max_steps = sliding_window_view(steps, size - 1).max(axis=1) if size > 1 else np.zeros(len(windows))
    batch = task.max_batch
    for first in range(0, len(windows), batch):
        items = [
            Item(
                np.asarray(windows[i]),
                captured_at=float(timestamps[i + size - 1]),
                source="replay",
                index=i,
                meta={
                    "window_start": float(timestamps[i]),
                    "window_end": float(timestamps[i + size - 1]),
                    "max_step": float(max_steps[i]),
                },
            )
            for i in range(first, min(first + batch, len(windows)))
        ]
        decoded = task.decode(task.run(task.preprocess(items)), items)
        for item, value in zip(items, decoded):
            output = task.logic(value, item)
            end = item.index + size - 1
            scores[end] = value.score
            likelihood[end] = np.nan if value.likelihood is None else value.likelihood
            # A window across a gap publishes nothing, and the state it leaves holds.
            anomalous = getattr(output.data, "anomalous", False) if output.data is not None else task.decider.anomalous
            predicted[end] = 1 if anomalous else 0
            events += output.events
    events += task.flush(float(timestamps[-1]))
    return ReplayResult(scores, predicted, events, likelihood)
