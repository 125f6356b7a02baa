"""Synthetic device traffic built with the shared message models: for benchmarks, tests and demos."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from edge_agent.messages import (
    ActiveModel,
    BenchResultMessage,
    DefectData,
    Envelope,
    EventMessage,
    LatencySummary,
    MetricsMessage,
    ModelMessage,
    ResultMessage,
    SensorAnomalyData,
    ShelfData,
    StatusMessage,
    Timing,
    ZoneCount,
    topic,
)

EPOCH = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)


@dataclass
class Device:
    """One simulated device: builds (topic, message) pairs with increasing seq."""

    site: str
    device_id: str
    task: str = "defect"
    pipeline: str = "line1"
    seed: int = 0
    seq: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def _env(self, at: datetime) -> dict[str, object]:
        self.seq += 1
        return {
            "seq": self.seq,
            "site": self.site,
            "device_id": self.device_id,
            "captured_at": at,
            "message_id": uuid.UUID(int=self.rng.getrandbits(128), version=4),
        }

    def topic(self, leaf: str) -> str:
        return topic(self.site, self.device_id, leaf)

    def result(self, at: datetime, total_ms: float | None = None, flagged: bool = False) -> tuple[str, Envelope]:
        total = total_ms if total_ms is not None else self.rng.lognormvariate(3.3, 0.35)
        timing = Timing(
            preprocess_ms=total * 0.2,
            inference_ms=total * 0.6,
            decode_ms=total * 0.1,
            logic_ms=total * 0.1,
            total_ms=total,
        )
        data: DefectData | SensorAnomalyData | ShelfData
        if self.task == "defect":
            data = DefectData(
                item_id=f"item-{self.seq}", passed=not flagged, score=0.9 if flagged else 0.1, threshold=0.5
            )
        elif self.task == "sensor_anomaly":
            data = SensorAnomalyData(
                score=2.0 if flagged else 0.3,
                threshold=1.0,
                anomalous=flagged,
                window_start=at - timedelta(seconds=1),
                window_end=at,
            )
        else:
            zone = ZoneCount(
                zone="A1",
                count=0 if flagged else 8,
                raw_count=0 if flagged else 8,
                capacity=10,
                state="out" if flagged else "ok",
            )
            data = ShelfData(zones=[zone], detections=zone.count)
        msg = ResultMessage(**self._env(at), pipeline=self.pipeline, model="m@1", timing=timing, data=data)
        return self.topic(f"{self.task}/result"), msg

    def event(self, at: datetime, event: str) -> tuple[str, Envelope]:
        msg = EventMessage(
            **self._env(at), pipeline=self.pipeline, task=self.task, event=event, subject=f"item-{self.seq}"
        )
        return self.topic(f"{self.task}/event"), msg

    def status(self, at: datetime, state: str) -> tuple[str, Envelope]:
        return self.topic("status"), StatusMessage(**self._env(at), state=state, agent_version="0.1.0")

    def metrics(
        self,
        at: datetime,
        *,
        p50: float,
        p95: float,
        p99: float,
        count: int,
        under: float,
        period_s: float = 60.0,
        backlog: int = 0,
        replayed: int = 0,
        items: int = 0,
    ) -> tuple[str, Envelope]:
        summary = LatencySummary(
            pipeline=self.pipeline,
            task=self.task,
            count=count,
            p50_ms=p50,
            p95_ms=p95,
            p99_ms=p99,
            max_ms=p99 * 1.2,
            under_target_ratio=under,
            items=items or count,
        )
        msg = MetricsMessage(
            **self._env(at),
            period_s=period_s,
            uptime_s=3600.0,
            pipelines=[summary],
            backlog=backlog,
            replayed_count=replayed,
        )
        return self.topic("metrics"), msg

    def model(self, at: datetime, accuracy: dict[str, object]) -> tuple[str, Envelope]:
        active = ActiveModel(
            pipeline=self.pipeline,
            name="m",
            version="1",
            variant="onnx-int8",
            sha256="0" * 64,
            runtime="onnxruntime",
            accuracy=accuracy,
        )
        return self.topic("model"), ModelMessage(**self._env(at), models=[active])

    def bench(
        self,
        at: datetime,
        p95: dict[str, float],
        verdicts: dict[str, bool] | None = None,
        cpu_model: str = "ARM Cortex-A72",
    ) -> tuple[str, Envelope]:
        """An `edge-agent bench --publish` summary: model -> int8 p95 at 1 thread (fp32 and 4 threads beside it)."""
        summary: list[dict[str, Any]] = []
        for model, ms in p95.items():
            for variant, threads, factor in (("onnx-fp32", 1, 2.5), ("onnx-int8", 1, 1.0), ("onnx-int8", 4, 0.4)):
                summary.append({
                    "model": model, "task": self.task, "variant": variant, "threads": threads, "status": "ok",
                    "e2e_p50_ms": 0.8 * ms * factor, "e2e_p95_ms": ms * factor, "bare_p95_ms": 0.7 * ms * factor,
                    "under_target_ratio": 1.0 if ms * factor < 100 else 0.5,
                    "accuracy_ratio_to_fp32": 1.0 if variant == "onnx-fp32" else 0.99,
                })  # fmt: skip
        msg = BenchResultMessage(
            **self._env(at),
            fingerprint={"cpu_model": cpu_model, "cores": 4, "board": None},
            verdicts=verdicts if verdicts is not None else {model: ms < 100 for model, ms in p95.items()},
            summary=summary,
        )
        return self.topic("bench"), msg


def payload(message: Envelope, replayed: bool = False, published_at: datetime | None = None) -> bytes:
    """The JSON a device sends: send-time fields stamped in, as the outbox does."""
    stamped = message.model_copy(update={"replayed": replayed, "published_at": published_at})
    return stamped.model_dump_json().encode()


def day_of_traffic(device: Device, start: datetime = EPOCH, results: int = 200) -> list[tuple[str, bytes]]:
    """A plausible hour: status online, model card, results with some flagged, events, metrics."""
    out: list[tuple[str, bytes]] = []
    t, m = device.status(start, "online")
    out.append((t, payload(m)))
    t, m = device.model(start, {"f1": 0.93})
    out.append((t, payload(m)))
    for i in range(results):
        at = start + timedelta(seconds=10 * (i + 1))
        flagged = i % 20 == 0
        t, m = device.result(at, flagged=flagged)
        out.append((t, payload(m)))
        if flagged:
            t, m = device.event(at, "defect" if device.task == "defect" else "anomaly_start")
            out.append((t, payload(m)))
    t, m = device.metrics(
        start + timedelta(seconds=10 * results), p50=27.0, p95=48.0, p99=80.0, count=results, under=0.995
    )
    out.append((t, payload(m)))
    return out


@dataclass(frozen=True)
class Job:
    """One job of docs/roi.md's worked example: how often it reports and how often it catches something."""

    device: Device
    every: timedelta  # one result per item, frame or window
    catch_every: int  # every n-th result raises the job's event
    event: str
    false_alarm_every: int = 0  # every n-th event is judged a false alarm (0: none)


def worked_example_jobs() -> list[Job]:
    """A week on the appliance: a line camera (a part a minute, 2% defective), a shelf camera (a frame every
    5 minutes, a stock-out every 8 hours) and a pump's sensors (a window every 5 minutes, two anomalies)."""
    return [
        Job(Device("plant", "line-cam", "defect", "line1", seed=11), timedelta(minutes=1), 50, "defect", 10),
        Job(Device("plant", "shelf-cam", "shelf", "aisle3", seed=12), timedelta(minutes=5), 96, "out_of_stock"),
        Job(Device("plant", "pump-7", "sensor_anomaly", "pump", seed=13), timedelta(minutes=5), 1000, "anomaly_start"),
    ]


Timed = tuple[str, bytes, datetime]  # topic, payload, when it was sent


def worked_example_week(start: datetime = EPOCH, days: int = 7) -> tuple[list[Timed], dict[str, str]]:
    """The example's messages (status, results, events) and the operators' verdict on each event by message_id."""
    out: list[Timed] = []
    verdicts: dict[str, str] = {}
    for job in worked_example_jobs():
        t, m = job.device.status(start, "online")
        out.append((t, payload(m), start))
        count = int(timedelta(days=days) / job.every) + 1
        for i in range(count):
            at = start + i * job.every
            flagged = i % job.catch_every == job.catch_every - 1
            t, m = job.device.result(at, total_ms=30.0, flagged=flagged)
            out.append((t, payload(m), at))
            if flagged:
                t, event = job.device.event(at, job.event)
                out.append((t, payload(event), at))
                n = len([v for v in verdicts.values() if v]) + 1
                judged = "false_alarm" if job.false_alarm_every and n % job.false_alarm_every == 0 else "confirmed"
                verdicts[str(event.message_id)] = judged
    return out, verdicts
