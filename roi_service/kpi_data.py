"""Load what KPIs need for one scope and time window from the database, sorted by time for cheap slicing."""

from __future__ import annotations

import json
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, func, select

from roi_service.db.schema import devices, feedback, messages, status_events

ScopeKind = Literal["fleet", "site", "device", "job"]
DeviceKey = tuple[str, str]


@dataclass(frozen=True)
class Scope:
    """Fleet, one site, one device (`site/device`) or one job (task kind across the fleet)."""

    kind: ScopeKind = "fleet"
    site: str | None = None
    device_id: str | None = None
    task: str | None = None

    @classmethod
    def parse(cls, kind: ScopeKind, key: str | None) -> Scope:
        if kind == "fleet":
            return cls()
        if not key:
            raise ValueError(f"scope {kind} needs a key")
        if kind == "site":
            return cls(kind, site=key)
        if kind == "device":
            site, sep, device = key.partition("/")
            if not sep or not device:
                raise ValueError("a device scope key is 'site/device'")
            return cls(kind, site=site, device_id=device)
        return cls(kind, task=key)

    @property
    def label(self) -> str:
        if self.kind == "fleet":
            return "fleet"
        if self.kind == "device":
            return f"{self.site}/{self.device_id}"
        return str(self.site if self.kind == "site" else self.task)

    def where(self, table: Any) -> list[Any]:
        clauses = []
        if self.site is not None:
            clauses.append(table.c.site == self.site)
        if self.device_id is not None:
            clauses.append(table.c.device_id == self.device_id)
        return clauses


@dataclass
class Series:
    """Time-sorted rows with a parallel list of timestamps for bisect."""

    times: list[datetime] = field(default_factory=list)
    rows: list[Any] = field(default_factory=list)

    def add(self, at: datetime, row: Any) -> None:
        self.times.append(at)
        self.rows.append(row)

    def between(self, start: datetime, end: datetime) -> list[Any]:
        return self.rows[bisect_left(self.times, start) : bisect_left(self.times, end)]


@dataclass
class Window:
    """Everything in [start, end) for a scope, plus each device's last known state before start."""

    scope: Scope
    start: datetime
    end: datetime
    results: Series = field(default_factory=Series)  # (total_ms, flag, device)
    metrics: Series = field(default_factory=Series)  # (device, payload dict)
    events: Series = field(default_factory=Series)  # (event, message_id, task, device)
    replayed: Series = field(default_factory=Series)  # device
    models: dict[DeviceKey, dict[str, Any]] = field(default_factory=dict)
    transitions: dict[DeviceKey, list[tuple[datetime, str]]] = field(default_factory=dict)
    verdicts: dict[str, str] = field(default_factory=dict)


def load_window(engine: Engine, scope: Scope, start: datetime, end: datetime) -> Window:
    window = Window(scope, start, end)
    with engine.connect() as conn:
        _load_messages(conn, window)
        _load_models(conn, window)
        _load_transitions(conn, window)
        ids = [row[1] for row in window.events.rows]
        for chunk in range(0, len(ids), 500):
            query = select(feedback.c.event_message_id, feedback.c.verdict).where(
                feedback.c.event_message_id.in_(ids[chunk : chunk + 500])
            )
            window.verdicts.update({mid: verdict for mid, verdict in conn.execute(query)})
    return window


def _load_messages(conn: Connection, window: Window) -> None:
    scope = window.scope
    m = messages.c
    query = (
        select(
            m.captured_at,
            m.kind,
            m.site,
            m.device_id,
            m.task,
            m.total_ms,
            m.flag,
            m.event,
            m.message_id,
            m.replayed,
            m.payload,
        )
        .where(
            m.captured_at >= window.start,
            m.captured_at < window.end,
            m.kind.in_(("result", "event", "metrics")),
            *scope.where(messages),
        )
        .order_by(m.captured_at)
    )
    for at, kind, site, device, task, total_ms, flag, event, mid, replayed, body in conn.execute(query):
        key = (site, device)
        if scope.task is not None and kind != "metrics" and task != scope.task:
            continue
        if replayed:
            window.replayed.add(at, key)
        if kind == "result":
            window.results.add(at, (total_ms, flag, key))
        elif kind == "event":
            window.events.add(at, (event, mid, task, key))
        else:
            window.metrics.add(at, (key, json.loads(body)))


def _load_models(conn: Connection, window: Window) -> None:
    m = messages.c
    query = (
        select(m.site, m.device_id, m.payload)
        .where(m.kind == "model", m.captured_at < window.end, *window.scope.where(messages))
        .order_by(m.captured_at)
    )
    for site, device, body in conn.execute(query):
        window.models[(site, device)] = json.loads(body)  # newest last, so it wins


def _load_transitions(conn: Connection, window: Window) -> None:
    s = status_events.c
    query = (
        select(s.site, s.device_id, s.at, s.state)
        .where(s.at < window.end, *window.scope.where(status_events))
        .order_by(s.at)
    )
    for site, device, at, state in conn.execute(query):
        timeline = window.transitions.setdefault((site, device), [])
        if timeline and timeline[0][0] < window.start and at <= window.start:
            timeline.clear()  # only the last state before the window matters
        timeline.append((at, state))


# ---------------------------------------------------------------- benchmarks (not windowed: the latest counts)


@dataclass
class StoredBench:
    """A device in scope, the tasks of its pipelines, and its latest stored `bench` message if it sent one."""

    key: DeviceKey
    tasks: set[str] = field(default_factory=set)
    message_id: str | None = None
    captured_at: datetime | None = None
    payload: dict[str, Any] | None = None


def load_benchmarks(engine: Engine, scope: Scope, end: datetime) -> list[StoredBench]:
    """Every known device in scope with its newest `bench` message measured before `end`, sorted by device."""
    found: dict[DeviceKey, StoredBench] = {}
    if scope.kind == "device" and scope.site is not None and scope.device_id is not None:
        found[(scope.site, scope.device_id)] = StoredBench((scope.site, scope.device_id))
    with engine.connect() as conn:
        for site, device, pipelines in conn.execute(
            select(devices.c.site, devices.c.device_id, devices.c.pipelines).where(*scope.where(devices))
        ):
            found[(site, device)] = StoredBench((site, device), tasks=_pipeline_tasks(pipelines))
        for site, device, mid, at, body in conn.execute(_latest_bench_query(scope, end)):
            entry = found.setdefault((site, device), StoredBench((site, device)))
            entry.message_id, entry.captured_at, entry.payload = mid, at, _json_object(body)
    return [found[key] for key in sorted(found)]


def _latest_bench_query(scope: Scope, end: datetime) -> Any:
    m = messages.c
    newest_first = func.row_number().over(
        partition_by=(m.site, m.device_id), order_by=(m.captured_at.desc(), m.id.desc())
    )
    ranked = (
        select(m.site, m.device_id, m.message_id, m.captured_at, m.payload, newest_first.label("rank"))
        .where(m.kind == "bench", m.captured_at < end, *scope.where(messages))
        .subquery()
    )
    r = ranked.c
    return select(r.site, r.device_id, r.message_id, r.captured_at, r.payload).where(r.rank == 1)


def _pipeline_tasks(text: str | None) -> set[str]:
    try:
        pipelines = json.loads(text or "[]")
    except ValueError:
        return set()
    if not isinstance(pipelines, list):
        return set()
    return {str(p["task"]) for p in pipelines if isinstance(p, dict) and p.get("task")}


def _json_object(text: str) -> dict[str, Any] | None:
    """The stored payload was validated on ingest; a body that no longer parses counts as no benchmark."""
    try:
        body = json.loads(text)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
