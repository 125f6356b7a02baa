"""Turn one MQTT delivery into a row to store, a snapshot reference, an ignore or a counted reject (pure)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from edge_agent.messages import (
    BenchResultMessage,
    CommandMessage,
    EventMessage,
    MetricsMessage,
    ModelMessage,
    ResultMessage,
    StatusMessage,
    check_segment,
    parse_message,
    parse_topic,
)
from edge_agent.seqranges import SeqRange
from roi_service.ingest.plausible import DEFAULT_LIMITS, Limits, implausible, snapshot_problem, too_large

RESEND_REPLY = "cmd/resend/reply"
_MAX_BIGINT = 2**63 - 1
_MAX_PIPELINE = 64
_MAX_LEAF = 200


@dataclass(frozen=True)
class Incoming:
    """One delivery as the MQTT callback saw it."""

    topic: str
    payload: bytes
    retained: bool
    received_at: datetime
    mid: int = 0
    qos: int = 0


@dataclass(frozen=True)
class Rejected:
    reason: str
    detail: str


@dataclass(frozen=True)
class Ignored:
    reason: str


@dataclass(frozen=True)
class Snapshot:
    row: dict[str, Any]


@dataclass(frozen=True)
class Accepted:
    row: dict[str, Any]
    message: Any
    retained: bool = False


@dataclass(frozen=True)
class ResendReply:
    """A device's answer to cmd/resend: the ranges it no longer holds become a counted, dated loss."""

    site: str
    device_id: str
    not_held: list[SeqRange]
    received_at: datetime


Decision = Accepted | Snapshot | Ignored | Rejected | ResendReply


def _expected_leaf(message: Any) -> str:
    if isinstance(message, ResultMessage):
        return f"{message.data.task}/result"
    if isinstance(message, EventMessage):
        return f"{message.task}/event"
    if isinstance(message, StatusMessage | ModelMessage | MetricsMessage | BenchResultMessage):
        return str(message.kind)
    raise TypeError(f"unhandled message type {type(message).__name__}")


def _result_columns(message: Any) -> tuple[float | None, bool | None, str | None, str | None, str | None]:
    """(total_ms, flag, event, task, pipeline) columns lifted out of the payload for fast KPI queries."""
    if isinstance(message, ResultMessage):
        data = message.data
        total = message.timing.total_ms
        return (total if math.isfinite(total) else None), data.flagged(), None, data.task, message.pipeline
    if isinstance(message, EventMessage):
        return None, None, message.event, message.task, message.pipeline
    return None, None, None, None, None


def _snapshot(incoming: Incoming, site: str, device: str, leaf: str, limits: Limits) -> Decision:
    task, _, snapshot_id = leaf.split("/", 2)
    problem = snapshot_problem(incoming.payload, limits)
    if problem is not None:
        return Rejected("snapshot", problem)
    try:
        check_segment(task, "task")
        check_segment(snapshot_id, "snapshot id")
    except ValueError as exc:
        return Rejected("topic", str(exc))
    row = {
        "topic": incoming.topic,
        "site": site,
        "device_id": device,
        "task": task[:32],
        "snapshot_id": snapshot_id[:200],
        "size_bytes": len(incoming.payload),
        "sha256": hashlib.sha256(incoming.payload).hexdigest(),
        "received_at": incoming.received_at,
    }
    return Snapshot(row)


def _check_ranges(message: Any, leaf: str) -> str | None:
    """Values the contract allows but the database columns cannot hold."""
    if message.seq > _MAX_BIGINT:
        return f"seq {message.seq} exceeds 64 bits"
    if len(leaf) > _MAX_LEAF:
        return "topic too long"
    pipeline = getattr(message, "pipeline", None)
    if pipeline is not None and not _storable_text(pipeline, _MAX_PIPELINE):
        return "pipeline name is not 1-64 printable characters"
    try:
        for stamp in (message.captured_at, message.published_at):
            # Only the first and last day of the calendar can overflow when converted to UTC.
            if stamp is not None and stamp.tzinfo is not None and not 1 < stamp.year < 9999:
                stamp.astimezone(timezone.utc)
    except OverflowError:
        return "timestamp out of range"
    return None


def _storable_text(value: str, limit: int) -> bool:
    # PostgreSQL text refuses NUL and both databases refuse lone surrogates from JSON escapes.
    if not value or len(value) > limit or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _segments(topic: str) -> tuple[str, str, str]:
    site, device, leaf = parse_topic(topic)
    check_segment(site, "site")
    check_segment(device, "device")
    return site, device, leaf


def classify(incoming: Incoming, limits: Limits = DEFAULT_LIMITS) -> Decision:
    """Validate one delivery; never raises for bad input."""
    try:
        site, device, leaf = _segments(incoming.topic)
    except ValueError as exc:
        return Rejected("topic", str(exc))
    if leaf == RESEND_REPLY:
        return _resend_reply(incoming, site, device)
    if leaf == "cmd" or leaf.startswith("cmd/"):
        return Ignored("command")
    if leaf.count("/") >= 2 and leaf.split("/", 2)[1] == "snapshot":
        return _snapshot(incoming, site, device, leaf, limits)
    oversized = too_large(leaf, len(incoming.payload), limits)
    if oversized is not None:
        return Rejected("size", oversized)
    return _classify_json(incoming, site, device, leaf, limits)


def _resend_reply(incoming: Incoming, site: str, device: str) -> Decision:
    if len(incoming.payload) > 256 * 1024:
        return Rejected("size", f"resend reply of {len(incoming.payload)} bytes")
    try:
        reply = CommandMessage.model_validate_json(incoming.payload)
        raw = reply.args.get("not_held", [])
        ranges = [(int(a), int(b)) for a, b in raw if 0 < int(a) <= int(b) <= _MAX_BIGINT]
    except (ValidationError, TypeError, ValueError) as exc:
        return Rejected("schema", f"resend reply: {exc}"[:200])
    if len(ranges) != len(raw):
        return Rejected("field_range", "resend reply ranges are not [first, last] with 0 < first <= last")
    return ResendReply(site, device, ranges, incoming.received_at)


def _classify_json(incoming: Incoming, site: str, device: str, leaf: str, limits: Limits) -> Decision:
    try:
        message = parse_message(incoming.payload)
    except ValidationError as exc:
        reason = "json" if any(err["type"] == "json_invalid" for err in exc.errors()) else "schema"
        return Rejected(reason, f"{exc.error_count()} error(s), first: {exc.errors()[0]['msg']}")
    if message.site != site or message.device_id != device or _expected_leaf(message) != leaf:
        return Rejected("topic_mismatch", f"payload {message.kind} of {message.site}/{message.device_id} on {leaf}")
    problem = _check_ranges(message, leaf)
    if problem is not None:
        return Rejected("field_range", problem)
    refusal = implausible(message, incoming.received_at, limits)
    if refusal is not None:
        return Rejected(*refusal)
    return Accepted(_row(incoming, message, site, device, leaf), message, incoming.retained)


def _row(incoming: Incoming, message: Any, site: str, device: str, leaf: str) -> dict[str, Any]:
    total_ms, flag, event, task, pipeline = _result_columns(message)
    return {
        "message_id": str(message.message_id),
        "kind": message.kind,
        "site": site,
        "device_id": device,
        "leaf": leaf,
        "task": task,
        "pipeline": pipeline,
        "seq": message.seq,
        "captured_at": message.captured_at,
        "received_at": incoming.received_at,
        "replayed": bool(message.replayed),
        "total_ms": total_ms,
        "flag": flag,
        "event": event,
        "payload": incoming.payload.decode("utf-8", errors="replace"),
    }
