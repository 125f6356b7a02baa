"""THE MQTT contract between devices and everything that listens: topics and payload models.

Topic tree (``edge/v1/{site}/{device}/...``):

    status                 retained; online/offline; the broker publishes the last will ``offline``
    model                  retained; the models each pipeline runs
    metrics                latency percentiles, share under the 100 ms target, backlog, drops
    {task}/result          one per inference (sensor window, inspected item, shelf frame)
    {task}/event           state changes: anomaly_start/end, defect, low_stock, out_of_stock, restocked
    {task}/snapshot/{id}   JPEG bytes of a defect snapshot (binary, referenced by the defect event)
    bench                  a benchmark run's summary (edge-agent bench --publish)
    cmd/{name}             commands to the device; never retained

Every JSON payload carries the envelope fields of `Envelope`. ``published_at`` and ``replayed``
are filled in when a message leaves the outbox; a message sent from the backlog after an
outage or a restart has ``replayed: true``. Consumers deduplicate on ``message_id``.
This module holds pydantic models only: roi_service imports it.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION = 1
TOPIC_ROOT = "edge/v1"
TaskKind = Literal["sensor_anomaly", "defect", "shelf", "classify"]
TASK_KINDS: tuple[str, ...] = ("sensor_anomaly", "defect", "shelf", "classify")
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- envelope


class Envelope(_Model):
    """Fields every JSON payload carries."""

    schema_version: Literal[1] = Field(1, description="Payload schema version.")
    message_id: uuid.UUID = Field(default_factory=uuid.uuid4, description="Unique id; consumers dedupe on it.")
    seq: int = Field(ge=0, description="Per-device sequence number, strictly increasing across restarts.")
    site: str = Field(description="Site id (topic segment).")
    device_id: str = Field(description="Device id (topic segment).")
    captured_at: datetime = Field(description="When the input was captured (UTC).")
    published_at: datetime | None = Field(None, description="When the message left the device (UTC).")
    replayed: bool = Field(False, description="True when sent from the backlog after an outage or restart.")


# ---------------------------------------------------------------- task payloads


class ChannelContribution(_Model):
    channel: str
    contribution: float = Field(description="Share of the window's anomaly score from this channel (0..1).")


class SensorAnomalyData(_Model):
    task: Literal["sensor_anomaly"] = "sensor_anomaly"
    score: float = Field(description="Anomaly score of the window; above threshold is abnormal.")
    threshold: float
    anomalous: bool = Field(description="Debounced state after hysteresis and minimum duration.")
    window_start: datetime
    window_end: datetime
    top_channels: list[ChannelContribution] = Field(default_factory=list)
    likelihood: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Calibrated anomaly likelihood: the share of normal windows expected to score lower "
        "(0.99 is passed by ~1% of normal windows, 0.999 by ~0.1%); absent for models fitted without a calibration.",
    )
    likelihood_threshold: float | None = Field(None, description="Likelihood above which the window is abnormal.")

    def flagged(self) -> bool | None:
        """Whether the result asks for attention (the KPI flag): the debounced anomalous state."""
        return self.anomalous


class DefectData(_Model):
    task: Literal["defect"] = "defect"
    item_id: str = Field(description="Item identifier (trigger id, file name or frame counter).")
    passed: bool
    score: float
    threshold: float
    defect_box: list[int] | None = Field(None, description="x, y, w, h of the strongest region in frame pixels.")

    def flagged(self) -> bool | None:
        """A failed item."""
        return not self.passed


class ZoneCount(_Model):
    zone: str
    count: int = Field(ge=0, description="Smoothed facings in the zone.")
    raw_count: int = Field(ge=0, description="Detections in this frame.")
    capacity: int | None = Field(None, description="Configured full-shelf facings, if known.")
    state: Literal["ok", "low", "out", "over"] = Field(
        "ok", description="over: more facings than capacity (a misdrawn zone or double detections), not trusted."
    )
    over_capacity: bool = Field(False, description="The count exceeds the zone's capacity.")
    facings_per_row: list[int] = Field(default_factory=list)


class ShelfData(_Model):
    task: Literal["shelf"] = "shelf"
    zones: list[ZoneCount]
    detections: int = Field(ge=0, description="Products detected in the frame.")
    frame_id: str | None = Field(
        None, description="The frame counted: the source's file name or source-frame number (captured_at dates it)."
    )

    def flagged(self) -> bool | None:
        """Any zone low, out or over capacity."""
        return any(zone.state != "ok" for zone in self.zones)


class ClassifyData(_Model):
    task: Literal["classify"] = "classify"
    label: str
    score: float
    top: list[tuple[str, float]] = Field(default_factory=list)

    def flagged(self) -> bool | None:
        """A label says nothing good or bad by itself."""
        return None


ResultData = Annotated[
    SensorAnomalyData | DefectData | ShelfData | ClassifyData,
    Field(discriminator="task"),
]


class Timing(_Model):
    """Per-stage milliseconds of the inference that produced the result."""

    preprocess_ms: float
    inference_ms: float
    decode_ms: float
    logic_ms: float
    total_ms: float


class ResultMessage(Envelope):
    """`{task}/result`: one per inference."""

    kind: Literal["result"] = "result"
    pipeline: str
    model: str = Field(description="model name@version")
    timing: Timing
    data: ResultData


EventType = Literal[
    "anomaly_start", "anomaly_end", "defect", "low_stock", "out_of_stock", "restocked", "model_update"
]


class EventMessage(Envelope):
    """`{task}/event`: a debounced state change an operator or a PLC can act on."""

    kind: Literal["event"] = "event"
    pipeline: str
    task: TaskKind
    event: EventType
    severity: Literal["info", "warning", "critical"] = "warning"
    subject: str = Field(description="What the event is about: zone, item id or machine.")
    details: dict[str, Any] = Field(default_factory=dict, description="Event-specific values (peak score, count).")
    snapshot_topic: str | None = Field(None, description="Topic of the JPEG snapshot, for defect events.")


# ---------------------------------------------------------------- device state


class PipelineStatus(_Model):
    name: str
    task: TaskKind
    state: Literal["starting", "running", "degraded", "stopped"]
    detail: str = ""


class StatusMessage(Envelope):
    """`status` (retained). The last will carries state offline."""

    kind: Literal["status"] = "status"
    state: Literal["online", "offline"]
    agent_version: str = ""
    started_at: datetime | None = None
    pipelines: list[PipelineStatus] = Field(default_factory=list)


class ActiveModel(_Model):
    pipeline: str
    name: str
    version: str
    variant: str
    sha256: str
    runtime: str
    accuracy: dict[str, Any] = Field(default_factory=dict, description="Measured figures from the manifest.")


UpdateStep = Literal[
    "requested", "downloading", "verified", "loaded", "self_tested", "swapped", "probation",
    "promoted", "rolled_back", "failed",
]


class ModelUpdateStatus(_Model):
    """The latest step of an over-the-air model update (cmd/model_update)."""

    pipeline: str
    name: str
    version: str
    step: UpdateStep
    ok: bool = Field(description="False once the update failed or was rolled back.")
    reason: str = Field("", description="Why it failed or rolled back, or what the step measured.")
    running: str = Field(description="name@version the pipeline runs after this step.")
    previous: str | None = Field(None, description="name@version kept on disk to roll back to.")
    at: datetime


class ModelMessage(Envelope):
    """`model` (retained): what each pipeline runs."""

    kind: Literal["model"] = "model"
    models: list[ActiveModel]
    update: ModelUpdateStatus | None = Field(None, description="The last model update step, if any.")


class LatencySummary(_Model):
    pipeline: str
    task: TaskKind
    count: int = Field(ge=0, description="Inferences in the period.")
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    under_target_ratio: float = Field(ge=0, le=1, description="Share of inferences under target_ms.")
    target_ms: float = 100.0
    errors: int = 0
    items: int = Field(0, description="Items judged (defect), windows scored (sensor), frames (shelf).")
    figures: dict[str, float] = Field(default_factory=dict, description="Job figures: defect_rate, anomalies.")


class MetricsMessage(Envelope):
    """`metrics`: periodic health and performance figures."""

    kind: Literal["metrics"] = "metrics"
    period_s: float = Field(gt=0)
    uptime_s: float = Field(ge=0)
    pipelines: list[LatencySummary]
    backlog: int = Field(0, ge=0, description="Messages waiting in the outbox.")
    backlog_oldest_s: float = Field(0, ge=0)
    dropped: int = Field(0, ge=0, description="Outbox rows dropped since start (bounds reached).")
    replayed_count: int = Field(0, ge=0, description="Messages sent from the backlog since start.")


class BenchResultMessage(Envelope):
    """`bench`: the summary of one `edge-agent bench` run on the device."""

    kind: Literal["bench"] = "bench"
    fingerprint: dict[str, Any]
    verdicts: dict[str, bool]
    summary: list[dict[str, Any]]


class CommandMessage(_Model):
    """`cmd/{name}`: a command to the device. No envelope: any client may send one."""

    request_id: str | None = None
    pipeline: str | None = Field(None, description="Target pipeline; all when omitted.")
    args: dict[str, Any] = Field(default_factory=dict)


AnyMessage = Annotated[
    ResultMessage | EventMessage | StatusMessage | ModelMessage | MetricsMessage | BenchResultMessage,
    Field(discriminator="kind"),
]
MESSAGE_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyMessage)
COMMANDS: tuple[str, ...] = ("snapshot", "reload", "set_threshold", "trigger", "resend", "model_update")


# ---------------------------------------------------------------- topics


def check_segment(value: str, what: str) -> str:
    """Site, device and task ids become topic segments: no wildcards, slashes or spaces."""
    if not _SEGMENT.match(value):
        raise ValueError(f"{what} {value!r} must be 1-64 characters of A-Z a-z 0-9 _ - (it is an MQTT topic level)")
    return value


def device_root(site: str, device: str) -> str:
    return f"{TOPIC_ROOT}/{site}/{device}"


def topic(site: str, device: str, leaf: str) -> str:
    """`topic("s", "d", "shelf/result")` -> ``edge/v1/s/d/shelf/result``."""
    return f"{device_root(site, device)}/{leaf}"


def parse_topic(name: str) -> tuple[str, str, str]:
    """Split a topic into (site, device, leaf); ValueError if it is outside the tree."""
    parts = name.split("/")
    if len(parts) < 5 or "/".join(parts[:2]) != TOPIC_ROOT:
        raise ValueError(f"topic {name!r} is not under {TOPIC_ROOT}/{{site}}/{{device}}/")
    return parts[2], parts[3], "/".join(parts[4:])


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def stamp_for_send(body: bytes, published_at: datetime, replayed: bool) -> bytes:
    """Add published_at and replayed to a stored JSON object without re-serialising the whole payload."""
    return SendStamp(published_at).apply(body, replayed)


class SendStamp:
    """The send-time fields for one batch of stored payloads, encoded once for the whole batch."""

    def __init__(self, published_at: datetime) -> None:
        when = json.dumps(published_at.isoformat().replace("+00:00", "Z"))
        self._tails = {
            flag: f'"published_at":{when},"replayed":{str(flag).lower()}}}'.encode() for flag in (False, True)
        }

    def apply(self, body: bytes, replayed: bool) -> bytes:
        if not body.endswith(b"}"):
            return body
        joiner = b"," if body != b"{}" else b""
        return body[:-1] + joiner + self._tails[replayed]


def serialize_for_store(message: Envelope) -> bytes:
    """JSON for the outbox; the send-time fields are added by `stamp_for_send`."""
    return message.model_dump_json(exclude={"published_at", "replayed"}).encode()


def parse_message(payload: bytes | str) -> Any:
    """Validate any JSON payload of the tree; raises pydantic.ValidationError on anything else."""
    return MESSAGE_ADAPTER.validate_json(payload)
