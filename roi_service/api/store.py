"""Reads and writes behind the API: devices, events, feedback, use cases and readiness assessments."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, delete, desc, func, select

from roi_service.api import audit
from roi_service.calc.readiness import ReadinessScores
from roi_service.calc.roi import UseCaseParams
from roi_service.db.engine import insert_for
from roi_service.db.schema import devices, feedback, messages, readiness, snapshots, use_cases
from roi_service.kpi_data import Scope

Verdict = Literal["confirmed", "false_alarm"]


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verdict: Verdict
    note: str = Field("", max_length=2000)


class ReadinessIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("default", min_length=1, max_length=120)
    scores: ReadinessScores


class DeviceOut(BaseModel):
    site: str
    device_id: str
    state: str
    state_since: datetime | None
    last_seen: datetime
    agent_version: str
    pipelines: list[dict[str, Any]]


class EventOut(BaseModel):
    message_id: str
    site: str
    device_id: str
    task: str | None
    event: str | None
    captured_at: datetime
    subject: str
    severity: str
    verdict: str | None
    snapshot_sha256: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


def list_devices(engine: Engine) -> list[DeviceOut]:
    query = select(devices).order_by(devices.c.site, devices.c.device_id)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [DeviceOut(**{**row, "pipelines": json.loads(row["pipelines"] or "[]")}) for row in rows]


def list_events(engine: Engine, limit: int = 100, message_id: str | None = None) -> list[EventOut]:
    """Newest events first (or the one named), with the verdict and the hash of the snapshot sent with each."""
    m = messages.c
    query = (
        select(m.message_id, m.site, m.device_id, m.task, m.event, m.captured_at, m.payload, feedback.c.verdict)
        .outerjoin(feedback, feedback.c.event_message_id == m.message_id)
        .where(m.kind == "event", *([m.message_id == message_id] if message_id else []))
        .order_by(desc(m.captured_at))
        .limit(limit)
    )
    out = []
    with engine.connect() as conn:
        rows = [(row, json.loads(row["payload"])) for row in conn.execute(query).mappings()]
        topics = [body["snapshot_topic"] for _, body in rows if body.get("snapshot_topic")]
        shas = dict(
            conn.execute(select(snapshots.c.topic, snapshots.c.sha256).where(snapshots.c.topic.in_(topics))).all()
        )
    for row, body in rows:
        fields = {k: row[k] for k in ("message_id", "site", "device_id", "task", "event", "captured_at", "verdict")}
        out.append(
            EventOut(
                **fields,
                subject=body.get("subject", ""),
                severity=body.get("severity", ""),
                snapshot_sha256=shas.get(body.get("snapshot_topic") or ""),
                details=body.get("details") or {},
            )
        )
    return out


def event_exists(engine: Engine, message_id: str) -> bool:
    query = select(messages.c.id).where(messages.c.message_id == message_id, messages.c.kind == "event")
    with engine.connect() as conn:
        return conn.execute(query).first() is not None


def save_feedback(engine: Engine, message_id: str, body: FeedbackIn, now: datetime) -> None:
    """The latest verdict on an event wins (an operator may correct a click)."""
    stmt = insert_for(engine)(feedback).values(
        event_message_id=message_id, verdict=body.verdict, note=body.note, created_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["event_message_id"],
        set_={"verdict": stmt.excluded.verdict, "note": stmt.excluded.note, "created_at": stmt.excluded.created_at},
    )
    with engine.begin() as conn:
        conn.execute(stmt)


def list_use_cases(engine: Engine) -> list[UseCaseParams]:
    with engine.connect() as conn:
        rows = conn.execute(select(use_cases.c.params).order_by(use_cases.c.name)).scalars().all()
    return [UseCaseParams.model_validate_json(row) for row in rows]


def save_use_case(engine: Engine, params: UseCaseParams, now: datetime, who: str = "API (bearer token)") -> None:
    """Create or replace a use case; the change and who made it are audited in the same transaction."""
    after = params.model_dump_json()
    stmt = insert_for(engine)(use_cases).values(name=params.name, params=after, updated_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"], set_={"params": stmt.excluded.params, "updated_at": stmt.excluded.updated_at}
    )
    with engine.begin() as conn:
        before = conn.execute(select(use_cases.c.params).where(use_cases.c.name == params.name)).scalar()
        conn.execute(stmt)
        audit.record(conn, now, who, "use_case", params.name, before, after)


def delete_use_case(engine: Engine, name: str, now: datetime | None = None, who: str = "API (bearer token)") -> bool:
    with engine.begin() as conn:
        before = conn.execute(select(use_cases.c.params).where(use_cases.c.name == name)).scalar()
        gone = conn.execute(delete(use_cases).where(use_cases.c.name == name)).rowcount > 0
        if gone:
            audit.record(conn, now or datetime.now(timezone.utc), who, "use_case", name, before, None)
        return gone


def save_readiness(engine: Engine, body: ReadinessIn, now: datetime, who: str = "API (bearer token)") -> None:
    """Record an assessment (each one is kept); audited against the latest one before it."""
    after = body.scores.model_dump_json()
    with engine.begin() as conn:
        query = select(readiness.c.scores).order_by(desc(readiness.c.created_at), desc(readiness.c.id)).limit(1)
        before = conn.execute(query).scalar()
        conn.execute(readiness.insert().values(name=body.name, scores=after, created_at=now))
        audit.record(conn, now, who, "readiness", body.name, before, after)


def latest_readiness(engine: Engine) -> tuple[str, ReadinessScores, datetime] | None:
    query = select(readiness).order_by(desc(readiness.c.created_at), desc(readiness.c.id)).limit(1)
    with engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    if row is None:
        return None
    return row["name"], ReadinessScores.model_validate_json(row["scores"]), row["created_at"]


def latest_data_at(engine: Engine, scope: Scope) -> datetime | None:
    """When the newest result or event of the scope was captured (None when there is none)."""
    clauses = [messages.c.kind.in_(("result", "event")), *scope.where(messages)]
    if scope.task is not None:
        clauses.append(messages.c.task == scope.task)
    query = select(func.max(messages.c.captured_at)).where(*clauses)
    with engine.connect() as conn:
        value = conn.execute(query).scalar()
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)  # SQLite gives naive UTC back
    return value if isinstance(value, datetime) else None
