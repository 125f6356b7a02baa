"""What cannot be true is refused: non-finite numbers, negative latencies, timestamps far from the service
clock, oversized strings and payloads, markup in identifiers. Pure; each refusal names its reason."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from edge_agent.messages import MetricsMessage, ResultMessage
from roi_service.config import IngestSettings

JPEG_START = b"\xff\xd8\xff"
JPEG_END = b"\xff\xd9"
# Identifiers (versions, names, labels, zones): printable words and punctuation, never markup or quotes.
_IDENT = re.compile(r"^[\w .:@/+=,()#%\[\]-]*$")
_IDENT_KEYS = frozenset(
    {"agent_version", "model", "pipeline", "name", "variant", "runtime", "label", "zone", "channel", "subject",
     "item_id", "sha256", "version", "snapshot_topic", "task", "event", "state"}
)  # fmt: skip
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LATENCY_FIELDS = ("p50_ms", "p95_ms", "p99_ms", "max_ms")


def _default_sizes() -> dict[str, int]:
    return {"result": 64 * 1024, "event": 64 * 1024, "status": 64 * 1024, "model": 256 * 1024,
            "metrics": 256 * 1024, "bench": 1024 * 1024, "reply": 64 * 1024}  # fmt: skip


@dataclass(frozen=True)
class Limits:
    """Bounds on what a device may send; IngestSettings builds them from the service's settings."""

    max_past_s: float = 30 * 86400  # a device may replay a backlog this old (its outbox keeps 7 days by default)
    max_future_s: float = 3600.0  # a device clock without NTP for weeks drifts minutes, not hours
    max_string: int = 1024
    max_snapshot_bytes: int = 1024 * 1024
    max_bytes: dict[str, int] = field(default_factory=_default_sizes)


DEFAULT_LIMITS = Limits()


def limits_for(ingest: IngestSettings) -> Limits:
    return Limits(max_past_s=ingest.max_past_s, max_future_s=ingest.max_future_s)


def payload_kind(leaf: str) -> str:
    """The size class of a topic leaf: the last segment for results and events, the leaf for the rest."""
    if leaf.startswith("cmd/"):
        return "reply"
    return leaf.rsplit("/", 1)[-1]


def too_large(leaf: str, size: int, limits: Limits) -> str | None:
    cap = limits.max_bytes.get(payload_kind(leaf), 64 * 1024)
    return f"{size} bytes on {payload_kind(leaf)} (at most {cap})" if size > cap else None


def snapshot_problem(payload: bytes, limits: Limits) -> str | None:
    if len(payload) > limits.max_snapshot_bytes:
        return f"snapshot of {len(payload)} bytes (at most {limits.max_snapshot_bytes})"
    if not payload.startswith(JPEG_START) or JPEG_END not in payload[-64:]:
        return "snapshot payload is not a complete JPEG (FF D8 FF ... FF D9)"
    return None


def _walk(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield "key", str(k)
            yield from _walk(v, str(k))
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _walk(v, key)
    else:
        yield key, value


def implausible(message: Any, received_at: datetime, limits: Limits = DEFAULT_LIMITS) -> tuple[str, str] | None:
    """(reason, detail) when a schema-valid message cannot be true; None when it may be."""
    earliest = received_at - timedelta(seconds=limits.max_past_s)
    latest = received_at + timedelta(seconds=limits.max_future_s)
    for key, value in _walk(message.model_dump()):
        problem = _value_problem(key, value, earliest, latest, limits)
        if problem is not None:
            return problem
    return _negative_latency(message)


def _value_problem(
    key: str, value: Any, earliest: datetime, latest: datetime, limits: Limits
) -> tuple[str, str] | None:
    if isinstance(value, float) and not math.isfinite(value):
        return "not_finite", f"{key} is {value}"
    if isinstance(value, str):
        if len(value) > limits.max_string or _CONTROL.search(value):
            return "string", f"{key}: {len(value)} characters or control characters"
        if key in _IDENT_KEYS and not _IDENT.match(value):
            return "string", f"{key} holds characters an identifier cannot ({value[:40]!r})"
    if isinstance(value, datetime):
        when = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        if not earliest <= when <= latest:
            return "timestamp", f"{key} {value.isoformat()} is outside the window around the service clock"
    return None


def _negative_latency(message: Any) -> tuple[str, str] | None:
    if isinstance(message, ResultMessage):
        timing = message.timing.model_dump()
        negative = [k for k, v in timing.items() if v < 0]
        if negative:
            return "negative_latency", f"timing {', '.join(negative)} below 0"
    if isinstance(message, MetricsMessage):
        for summary in message.pipelines:
            if any(getattr(summary, f) < 0 for f in _LATENCY_FIELDS):
                return "negative_latency", f"pipeline {summary.pipeline} latency percentiles below 0"
    return None
