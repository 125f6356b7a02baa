"""The machine-sensor anomaly task: normalise windows, score reconstruction error, debounce into events."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from edge_agent.errors import DataError, ManifestError
from edge_agent.messages import ChannelContribution, SensorAnomalyData
from edge_agent.metrics import AgentMetrics
from edge_agent.runtime.registry import LoadedModel
from edge_agent.tasks.base import EventDraft, Item, Task, TaskContext, TaskOutput
from edge_agent.tasks.sensor.config import SensorAnomalyTaskConfig
from edge_agent.tasks.sensor.decision import DecisionSettings, HysteresisDecider, Transition
from edge_agent.tasks.sensor.scoring import (
    DECODER,
    SensorParams,
    channel_errors,
    frozen_channels,
    normalise_into,
    parse_params,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowScore:
    """Decoded output for one window: its score, each channel's relative error, the top channels' shares."""

    score: float
    channel_error: np.ndarray
    top: list[tuple[str, float]]


class SensorAnomalyTask(Task[SensorAnomalyTaskConfig, WindowScore]):
    """Scores sensor windows with a reconstruction model and raises debounced anomaly_start/end events."""

    kind = "sensor_anomaly"

    def __init__(
        self,
        config: SensorAnomalyTaskConfig,
        model: LoadedModel,
        context: TaskContext,
        metrics: AgentMetrics | None = None,
    ) -> None:
        super().__init__(config, model, context)
        self.max_batch = config.batch_size
        manifest = model.manifest
        if manifest.decoder != DECODER:
            raise ManifestError(f"model {manifest.name!r}: decoder {manifest.decoder!r} is not {DECODER!r}")
        self.params: SensorParams = parse_params(manifest.params)
        _check_input(model, self.params)
        threshold = config.threshold if config.threshold is not None else manifest.thresholds.get("score")
        if threshold is None:
            raise ManifestError(f"model {manifest.name!r}: thresholds.score is missing and the config sets none")
        self.decider = HysteresisDecider(
            DecisionSettings(
                threshold, config.clear_ratio, config.min_windows, config.clear_windows, config.top_channels
            ),
            self.params.channels,
        )
        self.subject = config.subject or context.pipeline
        self.metrics = metrics
        shape = (self.max_batch, self.params.size, len(self.params.channels))
        self._buffer = np.zeros(shape, dtype=np.float32)
        self._inputs = self._buffer[:0]

    @property
    def threshold(self) -> float:
        return self.decider.settings.threshold

    def preprocess(self, items: Sequence[Item]) -> list[np.ndarray]:
        expected = (self.params.size, len(self.params.channels))
        for item in items:
            if item.data.shape != expected:
                raise DataError(
                    f"window {item.index} from {item.source} has shape {item.data.shape}, the model needs {expected} "
                    f"(window size x channels {', '.join(self.params.channels)})"
                )
        if len(items) > len(self._buffer):
            self._buffer = np.zeros((len(items), *expected), dtype=np.float32)
        self._inputs = normalise_into(self._buffer, [item.data for item in items], self.params)
        return [self._inputs]

    def decode(self, outputs: list[np.ndarray], items: Sequence[Item]) -> list[WindowScore]:
        reconstruction = outputs[0]
        if reconstruction.shape != self._inputs.shape:
            raise DataError(f"model returned shape {reconstruction.shape}, expected {self._inputs.shape}")
        errors = channel_errors(self._inputs, reconstruction, self.params)
        frozen = frozen_channels(self._inputs, self.params)
        if frozen is not None:
            # A stuck channel alone lifts its window to twice the threshold, and is named as the cause.
            errors[frozen] = np.maximum(errors[frozen], 2.0 * self.threshold * errors.shape[1])
        scores = errors.mean(axis=1)
        # Top channels for the whole batch at once: per-window numpy calls cost more than the model here.
        k = min(self.config.top_channels, errors.shape[1])
        order = np.argsort(-errors, axis=1, kind="stable")[:, :k]
        totals = errors.sum(axis=1, keepdims=True)
        shares = (np.take_along_axis(errors, order, axis=1) / np.where(totals > 0, totals, 1.0)).tolist()
        names = self.params.channels
        tops = [[(names[c], v) for c, v in zip(row, share)] for row, share in zip(order.tolist(), shares)]
        return [WindowScore(score, errors[i], tops[i]) for i, score in enumerate(scores.tolist())]

    def logic(self, decoded: WindowScore, item: Item) -> TaskOutput:
        start = float(item.meta.get("window_start", item.captured_at))
        end = float(item.meta.get("window_end", item.captured_at))
        decision = self.decider.update(decoded.score, decoded.channel_error, end)
        events = [self._event(decision.transition)] if decision.transition is not None else []
        if self.metrics is not None:
            self.metrics.anomaly_score.labels(self.context.pipeline).set(decoded.score)
            self.metrics.anomaly_state.labels(self.context.pipeline).set(1 if decision.anomalous else 0)
        data = SensorAnomalyData(
            score=decoded.score,
            threshold=self.threshold,
            anomalous=decision.anomalous,
            window_start=_utc(start),
            window_end=_utc(end),
            top_channels=[ChannelContribution(channel=c, contribution=v) for c, v in decoded.top],
        )
        return TaskOutput(data=data, events=events)

    def _event(self, transition: Transition) -> EventDraft:
        severity = "warning" if transition.kind == "anomaly_start" else "info"
        logger.info(
            "%s %s on %s: peak score %.3f, %.1f s, top %s",
            self.context.pipeline, transition.kind, self.subject, transition.peak_score,
            transition.duration_s, [c for c, _ in transition.top_channels],
        )  # fmt: skip
        return EventDraft(transition.kind, subject=self.subject, severity=severity, details=transition.details())

    def flush(self, when: float) -> list[EventDraft]:
        """Close an open anomaly when the source ends, so every anomaly_start gets its anomaly_end."""
        transition = self.decider.flush(when)
        return [self._event(transition)] if transition is not None else []

    def set_threshold(self, name: str, value: float) -> None:
        if name != "score":
            raise ValueError(f"task {self.kind} has only the threshold 'score', not {name!r}")
        if not value > 0:
            raise ValueError(f"threshold must be > 0, got {value}")
        self.decider.set_threshold(value)
        logger.info("%s: score threshold set to %.4f", self.context.pipeline, value)

    def items_label(self) -> str:
        return "windows"


def _check_input(model: LoadedModel, params: SensorParams) -> None:
    spec = model.manifest.inputs[0]
    expected = [None, params.size, len(params.channels)]
    if spec.layout != "NTC" or list(spec.shape) != expected:
        raise ManifestError(
            f"model {model.manifest.name!r}: inputs[0] must be NTC with shape {expected} "
            f"(window size {params.size}, {len(params.channels)} channels), got {spec.layout} {spec.shape}"
        )


def _utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc)
