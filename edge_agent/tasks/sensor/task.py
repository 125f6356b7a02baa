"""The machine-sensor anomaly task: normalise windows, score reconstruction error, debounce into events."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import numpy as np

from edge_agent.errors import DataError, ManifestError
from edge_agent.messages import ChannelContribution, ResultData, SensorAnomalyData
from edge_agent.metrics import AgentMetrics
from edge_agent.runtime.registry import LoadedModel
from edge_agent.tasks.base import EventDraft, Item, Task, TaskContext, TaskOutput
from edge_agent.tasks.sensor.adaptation import Adapter, BatchStats
from edge_agent.tasks.sensor.calibration import ExtraTests
from edge_agent.tasks.sensor.config import SensorAnomalyTaskConfig
from edge_agent.tasks.sensor.dashboard import SensorDashboard
from edge_agent.tasks.sensor.decision import HysteresisDecider, Transition
from edge_agent.tasks.sensor.gauss import isf, sf
from edge_agent.tasks.sensor.recent import SpanTracker, recent_tracker
from edge_agent.tasks.sensor.scoring import SensorParams, by_channel, channel_errors, frozen_channels, normalise_into
from edge_agent.tasks.sensor.settings import SensorSettings, sensor_settings
from edge_agent.tasks.sensor.spacing import GapCheck
from edge_agent.tasks.sensor.spectral import spectral_tracker

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowScore:
    """Decoded output for one window: raw score, calibrated likelihood, the value the state follows,
    each channel's relative error, the top channels' shares, its place in the batch, and whether it spans a gap."""

    score: float
    channel_error: np.ndarray
    top: list[tuple[str, float]]
    likelihood: float | None = None
    value: float = 0.0
    slot: int = 0
    gap: bool = False


class SensorAnomalyTask(Task[SensorAnomalyTaskConfig, WindowScore]):
    """Scores sensor windows with a reconstruction model and raises debounced anomaly_start/end events."""

    kind = "sensor_anomaly"
    dashboard = SensorDashboard()

    def __init__(
        self,
        config: SensorAnomalyTaskConfig,
        model: LoadedModel,
        context: TaskContext,
        metrics: AgentMetrics | None = None,
    ) -> None:
        super().__init__(config, model, context)
        self.max_batch = config.batch_size
        self.settings: SensorSettings = sensor_settings(config, model.manifest)
        self.params: SensorParams = self.settings.params
        _check_input(model, self.params)
        self.calibration = self.settings.calibration
        self.decider = HysteresisDecider(self.settings.decision, self.params.channels)
        if self.settings.decide_on == "likelihood":
            self.decider.likelihood = lambda z: float(1.0 - sf(np.array(z)))
        self.adapter = Adapter(self.params, self.calibration, self.settings.adapt_s)
        max_gap = config.max_gap if config.max_gap is not None else max(3.0, self.params.size / 4)
        self.gaps = GapCheck(self.params.size, self.settings.period_s, max_gap, context.pipeline)
        self.recent = self._recent_tracker(context.pipeline)
        self.spectral = self._spectral_tracker(context.pipeline)
        self._fit_mean = self.params.mean.copy()  # the recent-change test works on raw / std, unmoved by adaptation
        self.subject = config.subject or context.pipeline
        self.metrics = metrics if metrics is not None else context.metrics
        shape = (self.max_batch, self.params.size, len(self.params.channels))
        self._buffer = np.zeros(shape, dtype=np.float32)
        self._inputs = self._buffer[:0]
        self._held: list[EventDraft] = []

    def _recent_tracker(self, pipeline: str) -> SpanTracker | None:
        spec = self.settings.recent
        if spec is None or not self._every_sample(pipeline, "recent-change"):
            return None
        return recent_tracker(spec, self.params.size, self.params.stride, len(self.params.channels))

    def _spectral_tracker(self, pipeline: str) -> SpanTracker | None:
        spec = self.settings.spectral
        if spec is None or not self._every_sample(pipeline, "spectral-residual"):
            return None
        return spectral_tracker(spec, self.params.size, self.params.stride, len(self.params.channels))

    def _every_sample(self, pipeline: str, test: str) -> bool:
        """The span tests need every sample: with windows further apart than their length they are off."""
        size, stride = self.params.size, self.params.stride
        if stride > size:
            logger.warning(
                "%s: windows every %d samples skip samples between windows of %d: the %s test is off "
                "(set a stride <= the window)", pipeline, stride, size, test,
            )  # fmt: skip
        return stride <= size

    @property
    def threshold(self) -> float:
        """The raw score threshold (reported with every result)."""
        return self.settings.score_threshold

    @property
    def likelihood_threshold(self) -> float:
        return self.settings.likelihood_threshold

    def preprocess(self, items: Sequence[Item]) -> list[np.ndarray]:
        expected = (self.params.size, len(self.params.channels))
        for item in items:
            if item.data.shape != expected:
                raise DataError(
                    f"window {item.index} from {item.source} has shape {item.data.shape}, the model needs {expected} "
                    f"(window size x channels {', '.join(self.params.channels)})"
                )
        if self.adapter.active:
            self.params = self.adapter.apply()  # what the previous batch taught, before this one is normalised
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
        gaps = self._gaps(items)
        likelihood, values = self._calibrated(errors, scores, items, gaps)
        tops = self._tops(errors)
        lk = likelihood.tolist() if likelihood is not None else [None] * len(items)
        return [
            WindowScore(score, errors[i], tops[i], lk[i], value, i, gap)
            for i, (score, value, gap) in enumerate(zip(scores.tolist(), values.tolist(), gaps.tolist()))
        ]

    def _calibrated(
        self, errors: np.ndarray, scores: np.ndarray, items: Sequence[Item], gaps: np.ndarray
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """Likelihood per window and the value the state follows (calibrated z or the raw score)."""
        if self.calibration is None:
            return None, scores
        per_channel, joint = self.calibration.log_errors(errors.astype(np.float64))
        levels = by_channel(self._inputs).mean(axis=2).astype(np.float64)
        recent, spectral = self._span_tests(gaps)
        z = self.calibration.z_of_logs(per_channel, joint, ExtraTests(levels, recent, spectral))
        if self.adapter.active:
            means = self.params.mean + self.params.std * levels
            ends = np.array([_end(item) for item in items])
            self.adapter.observe(BatchStats(means, per_channel, joint, ends, np.zeros(len(items), dtype=bool)))
        likelihood: np.ndarray = 1.0 - sf(z)
        return likelihood, (z if self.settings.decide_on == "likelihood" else scores)

    def _span_tests(self, gaps: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The recent-change and spectral-residual tests of the batch, where the model has them."""
        trackers: list[SpanTracker | None] = [self.recent, self.spectral]
        if not any(trackers):
            return None, None
        shift = (self.params.mean - self._fit_mean) / self.params.std  # undo adaptation's moves of the mean
        inputs = self._inputs.astype(np.float64) + shift
        recent, spectral = (None if t is None else t.score(inputs, gaps) for t in trackers)
        return recent, spectral

    def _reset_span_tests(self) -> None:
        for tracker in (self.recent, self.spectral):
            if tracker is not None:
                tracker.reset()

    def _gaps(self, items: Sequence[Item]) -> np.ndarray:
        starts = np.array([float(item.meta.get("window_start", item.captured_at)) for item in items])
        ends = np.array([_end(item) for item in items])
        steps = [item.meta.get("max_step") for item in items]
        known = all(step is not None for step in steps)
        return self.gaps.spans_gap(starts, ends, np.array(steps, dtype=np.float64) if known else None)

    def _tops(self, errors: np.ndarray) -> list[list[tuple[str, float]]]:
        # Top channels for the whole batch at once: per-window numpy calls cost more than the model here.
        k = min(self.config.top_channels, errors.shape[1])
        order = np.argsort(-errors, axis=1, kind="stable")[:, :k]
        totals = errors.sum(axis=1, keepdims=True)
        shares = (np.take_along_axis(errors, order, axis=1) / np.where(totals > 0, totals, 1.0)).tolist()
        names = self.params.channels
        return [[(names[c], v) for c, v in zip(row, share)] for row, share in zip(order.tolist(), shares)]

    def logic(self, decoded: WindowScore, item: Item) -> TaskOutput:
        end = _end(item)
        events, self._held = self._held, []
        if decoded.gap:
            self.decider.interrupt()  # the window joins data from both sides of a gap: not scored
            return TaskOutput(data=None, events=events)
        if self.adapter.learning(end):
            self.adapter.mark_normal(decoded.slot)
            return TaskOutput(data=self._data(decoded, item, False), events=events)
        decision = self.decider.update(decoded.value, decoded.channel_error, end, raw=decoded.score)
        if decision.transition is not None:
            events.append(self._event(decision.transition))
        if not self.decider.open:
            self.adapter.mark_normal(decoded.slot)  # frozen while an anomaly is pending or open
        if self.metrics is not None:
            self.metrics.anomaly_score.labels(self.context.pipeline).set(decoded.score)
            self.metrics.anomaly_state.labels(self.context.pipeline).set(1 if decision.anomalous else 0)
            if decoded.likelihood is not None:
                self.metrics.anomaly_likelihood.labels(self.context.pipeline).set(decoded.likelihood)
        return TaskOutput(data=self._data(decoded, item, decision.anomalous), events=events)

    def _data(self, decoded: WindowScore, item: Item, anomalous: bool) -> SensorAnomalyData:
        start = float(item.meta.get("window_start", item.captured_at))
        return SensorAnomalyData(
            score=decoded.score,
            threshold=self.threshold,
            anomalous=anomalous,
            window_start=_utc(start),
            window_end=_utc(_end(item)),
            top_channels=[ChannelContribution(channel=c, contribution=v) for c, v in decoded.top],
            likelihood=decoded.likelihood,
            likelihood_threshold=self.likelihood_threshold if decoded.likelihood is not None else None,
        )

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
        events, self._held = self._held, []
        return events + ([self._event(transition)] if transition is not None else [])

    def set_threshold(self, name: str, value: float) -> None:
        if name not in ("score", "likelihood"):
            raise ValueError(f"task {self.kind} has the thresholds 'score' and 'likelihood', not {name!r}")
        if name == "likelihood" and not 0.5 < value < 1:
            raise ValueError(f"the likelihood threshold must be in (0.5, 1), e.g. 0.999; got {value}")
        if not value > 0:
            raise ValueError(f"threshold must be > 0, got {value}")
        if name == "score":
            self.settings = replace(self.settings, score_threshold=value)
        else:
            self.settings = replace(self.settings, likelihood_threshold=value)
        if name == self.settings.decide_on:
            self.decider.set_threshold(value if name == "score" else float(isf(np.array(1.0 - value))))
        logger.info("%s: %s threshold set to %.4f", self.context.pipeline, name, value)

    def rebaseline(self, duration_s: float) -> str:
        """`cmd/rebaseline` after maintenance: end an open anomaly, relearn the normal levels from the next data."""
        if not duration_s > 0:
            raise ValueError(f"rebaseline needs a duration > 0, got {duration_s}")
        transition = self.decider.flush(None)
        if transition is not None:
            self._held.append(self._event(transition))
        self.adapter.rebaseline(duration_s)
        self._reset_span_tests()  # their references restart from the data after maintenance
        logger.info("%s: relearning the normal levels over the next %.0f s", self.context.pipeline, duration_s)
        return f"relearning the normal levels over the next {duration_s:g} s (alarms held)"

    def validate_model(self) -> None:
        """For `check`: score one window at the normal mean through all stages; refuse what run would fail on."""
        size, channels = self.params.size, len(self.params.channels)
        window = np.broadcast_to(self.params.mean, (size, channels)).astype(np.float32)
        item = Item(window, 0.0, "check", 0, {"window_start": 0.0, "window_end": float(size - 1)})
        measured = self.gaps.measured_s
        try:
            decoded = self.decode(self.run(self.preprocess([item])), [item])[0]
        except DataError as exc:
            raise ManifestError(f"model {self.model.manifest.name!r}: {exc}") from exc
        finally:
            self.gaps.measured_s = measured  # the check's window says nothing about the stream
            self.adapter.observe(None)
            self._reset_span_tests()
        if not np.isfinite(decoded.score) or (decoded.likelihood is not None and not np.isfinite(decoded.likelihood)):
            raise ManifestError(f"model {self.model.manifest.name!r} scores a normal window as {decoded.score}")

    def items_label(self) -> str:
        return "windows"

    def observe(self, data: ResultData) -> Mapping[str, int]:
        """Anomalous windows in the period (the score gauges are set in `logic`, for every window)."""
        return {"anomalous_windows": int(isinstance(data, SensorAnomalyData) and data.anomalous)}

    def figures(self, counts: Mapping[str, int], items: int) -> dict[str, float]:
        return {"anomalous_windows": counts.get("anomalous_windows", 0)}


def _end(item: Item) -> float:
    return float(item.meta.get("window_end", item.captured_at))


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
