"""One pipeline per configured task: source -> preprocess -> run -> decode -> logic -> sinks, every stage timed."""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from edge_agent import messages as m
from edge_agent.errors import DataError, EdgeAgentError
from edge_agent.metrics import AgentMetrics
from edge_agent.sinks import Outgoing, Sink
from edge_agent.sources.runner import Handover, SourceRunner, SourceState
from edge_agent.tasks.base import EventDraft, Item, Task, TaskOutput

logger = logging.getLogger(__name__)
STAGES = ("preprocess", "inference", "decode", "logic")


class MessageFactory:
    """Wraps task outputs in envelopes: device identity, a fresh message_id and the next seq."""

    def __init__(
        self,
        site: str,
        device_id: str,
        next_seq: Callable[[], int],
        current_seq: Callable[[], int] | None = None,
    ) -> None:
        self.site = site
        self.device_id = device_id
        self.next_seq = next_seq
        self.current_seq = current_seq

    def envelope(self, captured_at: float) -> dict[str, Any]:
        return self._envelope(self.next_seq(), captured_at)

    def untracked_envelope(self, captured_at: float) -> dict[str, Any]:
        """For messages published straight to the broker (status, model, last will), not through the outbox:
        they repeat the last seq instead of taking one, so the cloud sees no gap where they went."""
        seq = self.current_seq() if self.current_seq is not None else self.next_seq()
        return self._envelope(seq, captured_at)

    def _envelope(self, seq: int, captured_at: float) -> dict[str, Any]:
        return {
            "seq": seq,
            "site": self.site,
            "device_id": self.device_id,
            "captured_at": datetime.fromtimestamp(captured_at, timezone.utc),
        }

    def topic(self, leaf: str) -> str:
        return m.topic(self.site, self.device_id, leaf)


@dataclass
class LatencyWindow:
    """End-to-end latencies since the last metrics message, for percentiles and the share under target."""

    samples: collections.deque[float]
    errors: int = 0
    items: int = 0
    counts: collections.Counter[str] = field(default_factory=collections.Counter)  # job counts (Task.observe)

    @classmethod
    def create(cls) -> LatencyWindow:
        return cls(collections.deque(maxlen=100_000))

    def summary(self, pipeline: str, task: str, target_ms: float) -> m.LatencySummary:
        values = np.asarray(self.samples, dtype=np.float64) * 1000.0
        p50, p95, p99 = np.percentile(values, [50, 95, 99]) if values.size else (0.0, 0.0, 0.0)
        return m.LatencySummary(
            pipeline=pipeline,
            task=task,
            count=int(values.size),
            p50_ms=float(p50),
            p95_ms=float(p95),
            p99_ms=float(p99),
            max_ms=float(values.max()) if values.size else 0.0,
            under_target_ratio=float((values < target_ms).mean()) if values.size else 1.0,
            target_ms=target_ms,
            errors=self.errors,
            items=self.items,
        )

    def reset(self) -> None:
        self.samples.clear()
        self.errors = self.items = 0
        self.counts.clear()


class Pipeline(threading.Thread):
    """Takes batches from the source's handover and runs the task template on them."""

    def __init__(
        self,
        name: str,
        task: Task[Any, Any],
        runner: SourceRunner,
        sinks: Sequence[Sink],
        metrics: AgentMetrics,
        factory: MessageFactory,
    ) -> None:
        super().__init__(name=f"pipeline-{name}", daemon=True)
        self.pipeline = name
        self.task = task
        self.runner = runner
        self.handover: Handover = runner.handover
        self.sinks = list(sinks)
        self.metrics = metrics
        self.factory = factory
        # A pipeline whose messages never reach the outbox takes no seq: the cloud would count each one as lost.
        numbered = any(sink.numbered for sink in self.sinks)
        self._envelope = factory.envelope if numbered else factory.untracked_envelope
        self.latency = LatencyWindow.create()
        self.last_result_at: float | None = None
        self.started_at = time.monotonic()
        self._stop_event = threading.Event()
        self._lock = threading.Lock()  # the task is shared with command handlers
        self._error_logged: set[str] = set()
        self.model_label = f"{task.model.manifest.name}@{task.model.manifest.version}"

    # ------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while not self._stop_event.is_set():
            batch = self.handover.take(self.task.max_batch, timeout_s=0.2)
            if not batch:
                if self.handover.closed and len(self.handover) == 0:
                    break
                continue
            self.metrics.queue_depth.labels(self.pipeline).set(len(self.handover))
            self.process(batch)
        logger.info("pipeline %s stopped", self.pipeline)

    # ------------------------------------------------------------ one batch

    def process(self, batch: list[Item]) -> None:
        """Run the four stages on a batch; a failing stage is counted and logged, never fatal."""
        stage = "preprocess"
        timer = _StageTimer()
        try:
            with self._lock:
                inputs = self.task.preprocess(batch)
                timer.lap("preprocess")
                stage = "inference"
                outputs = self.task.run(inputs)
                timer.lap("inference")
                stage = "decode"
                decoded = self.task.decode(outputs, batch)
                timer.lap("decode")
                stage = "logic"
                results = [self.task.logic(d, item) for d, item in zip(decoded, batch)]
                timer.lap("logic")
        except DataError as exc:  # the input is at fault (a frame of the wrong shape): counted as such
            self.metrics.input_errors.labels(self.pipeline, f"bad_{stage}_input").inc(len(batch))
            self._failed(stage, exc, len(batch))
            return
        except EdgeAgentError as exc:
            self._failed(stage, exc, len(batch))
            return
        except Exception as exc:
            logger.exception("pipeline %s: unexpected error in %s", self.pipeline, stage)
            self._failed(stage, exc, len(batch), logged=True)
            return
        outgoing = self._to_messages(batch, results, timer)
        self._deliver(outgoing)
        timer.lap("publish")
        self._account(batch, timer)

    def _to_messages(self, batch: list[Item], results: list[TaskOutput], timer: _StageTimer) -> list[Outgoing]:
        n = len(batch)
        timing = m.Timing(
            preprocess_ms=timer.ms("preprocess") / n,
            inference_ms=timer.ms("inference") / n,
            decode_ms=timer.ms("decode") / n,
            logic_ms=timer.ms("logic") / n,
            total_ms=timer.total_ms() / n,
        )
        out: list[Outgoing] = []
        kind = self.task.kind
        for item, result in zip(batch, results):
            if result.data is not None:
                self.latency.counts.update(self.task.observe(result.data))
                msg = m.ResultMessage(
                    **self._envelope(item.captured_at),
                    pipeline=self.pipeline,
                    model=self.model_label,
                    timing=timing,
                    data=result.data,
                )
                out.append(Outgoing(self.factory.topic(f"{kind}/result"), m.serialize_for_store(msg), "result"))
            for draft in result.events:
                out.extend(self._event(draft, item))
        return out

    def figures(self) -> dict[str, float]:
        """Job figures for the metrics message, over the current period (the task says which)."""
        return self.task.figures(self.latency.counts, self.latency.items)

    def _event(self, draft: EventDraft, item: Item) -> list[Outgoing]:
        kind = self.task.kind
        out: list[Outgoing] = []
        snapshot_topic = None
        if draft.snapshot_jpeg:
            snapshot_topic = self.factory.topic(f"{kind}/snapshot/{uuid.uuid4().hex}")
            out.append(Outgoing(snapshot_topic, draft.snapshot_jpeg, "snapshot"))
        event = m.EventMessage(
            **self._envelope(item.captured_at),
            pipeline=self.pipeline,
            task=kind,
            event=draft.event,
            severity=draft.severity,
            subject=draft.subject,
            details=draft.details,
            snapshot_topic=snapshot_topic,
        )
        self.metrics.events.labels(self.pipeline, draft.event).inc()
        logger.info("pipeline %s event %s on %s", self.pipeline, draft.event, draft.subject)
        out.append(Outgoing(self.factory.topic(f"{kind}/event"), m.serialize_for_store(event), "event"))
        return out

    def _deliver(self, outgoing: list[Outgoing]) -> None:
        if not outgoing:
            return
        for sink in self.sinks:
            try:
                sink.publish(outgoing)
                self._error_logged.discard(f"sink:{sink.name}")
            except Exception as exc:  # noqa: BLE001 - sinks are isolated: one failing never stops the others
                self.metrics.sink_errors.labels(self.pipeline, sink.name).inc()
                self._log_once(f"sink:{sink.name}", "pipeline %s: sink %s failed: %s", self.pipeline, sink.name, exc)

    def _account(self, batch: list[Item], timer: _StageTimer) -> None:
        now = time.monotonic()
        for stage in (*STAGES, "publish"):
            self.metrics.stage_seconds.labels(self.pipeline, stage).observe(timer.seconds(stage))
        self.metrics.inferences.labels(self.pipeline).inc()
        self.metrics.items.labels(self.pipeline).inc(len(batch))
        for item in batch:
            total = now - item.received
            self.metrics.stage_seconds.labels(self.pipeline, "total").observe(total)
            self.latency.samples.append(total)
        self.latency.items += len(batch)
        self.last_result_at = now
        self.metrics.last_result.labels(self.pipeline).set(time.time())
        self._error_logged.difference_update(STAGES)

    def _failed(self, stage: str, exc: BaseException, n: int, logged: bool = False) -> None:
        self.metrics.errors.labels(self.pipeline, stage).inc()
        self.latency.errors += n
        if not logged:
            self._log_once(stage, "pipeline %s: %s failed: %s", self.pipeline, stage, exc)

    def _log_once(self, key: str, fmt: str, *args: object) -> None:
        """Log a failure once per episode (until the next success) so a broken camera cannot flood the log."""
        if key not in self._error_logged:
            self._error_logged.add(key)
            logger.warning(fmt, *args)

    # ------------------------------------------------------------ health and commands

    def health(self, stale_s: float, now: float | None = None) -> tuple[bool, str]:
        """Healthy while results keep coming; a replay that ended on its own is finished, not failing."""
        now = time.monotonic() if now is None else now
        if self.runner.state is SourceState.CLOSED and not self.runner.last_error and not self.is_alive():
            return True, "finished"
        if not self.is_alive():
            return False, "pipeline thread stopped"
        if self.runner.state is not SourceState.STREAMING:
            since = self.last_result_at or self.started_at
            if now - since > stale_s:
                return False, f"source {self.runner.state.value}: {self.runner.last_error}"
        last = self.last_result_at or self.started_at
        if now - last > stale_s:
            if getattr(self.task.config, "trigger", "continuous") != "continuous":
                return True, "waiting for a trigger"  # a triggered line is idle, not broken, between items
            return False, f"no result for {now - last:.0f}s"
        return True, "ok"

    def swap_task(self, task: Task[Any, Any]) -> Task[Any, Any]:
        """Put a new task (a new model) in place between two batches; returns the old one, still open."""
        with self._lock:
            old, self.task = self.task, task
            self.model_label = f"{task.model.manifest.name}@{task.model.manifest.version}"
        return old

    def with_task(self, action: Callable[[Task[Any, Any]], Any]) -> Any:
        """Run a command against the task between batches."""
        with self._lock:
            return action(self.task)


class _StageTimer:
    def __init__(self) -> None:
        self._start = self._last = time.perf_counter()
        self._laps: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self._laps[stage] = now - self._last
        self._last = now

    def seconds(self, stage: str) -> float:
        return self._laps.get(stage, 0.0)

    def ms(self, stage: str) -> float:
        return self.seconds(stage) * 1000.0

    def total_ms(self) -> float:
        return sum(self._laps.get(s, 0.0) for s in STAGES) * 1000.0
