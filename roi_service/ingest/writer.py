"""Batch writer: classifies deliveries and commits them with ON CONFLICT DO NOTHING on message_id."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, or_
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from edge_agent.messages import StatusMessage
from roi_service.db.bulk import insert_messages
from roi_service.db.engine import insert_for
from roi_service.db.schema import devices, seq_losses, snapshots, status_events
from roi_service.ingest.classify import Accepted, Ignored, Incoming, Rejected, ResendReply, Snapshot, classify
from roi_service.ingest.plausible import DEFAULT_LIMITS, Limits
from roi_service.metrics import ServiceMetrics
from roi_service.snapshots import SnapshotStore

logger = logging.getLogger(__name__)


class StorageUnavailable(RuntimeError):
    """The database cannot be reached or is locked: retry the whole batch later, ack nothing."""


@dataclass
class WriteReport:
    """What one batch did; the same figures go to the Prometheus counters."""

    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    snapshots: int = 0
    ignored: int = 0
    db_rejected: int = 0
    stored_ids: list[str] = field(default_factory=list)


@dataclass
class Prepared:
    """A validated batch waiting for its commit."""

    size: int
    started: float
    accepted: list[Accepted] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    losses: list[dict[str, Any]] = field(default_factory=list)
    in_batch_duplicates: int = 0
    rejected: int = 0
    ignored: int = 0


class IngestWriter:
    """Stores device messages exactly once; a bad message is counted and logged, never raised."""

    def __init__(
        self,
        engine: Engine,
        metrics: ServiceMetrics,
        limits: Limits = DEFAULT_LIMITS,
        snapshot_store: SnapshotStore | None = None,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.limits = limits
        self.snapshot_store = snapshot_store  # keeps the JPEG files; the snapshots table keeps hash and size
        self._insert = insert_for(engine)

    def write(self, batch: Sequence[Incoming]) -> WriteReport:
        """Classify and store one batch (raises StorageUnavailable when the database is unreachable)."""
        return self.store(self.prepare(batch))

    def prepare(self, batch: Sequence[Incoming]) -> Prepared:
        """Validate a batch; rejects and ignores are counted here, once, whatever happens to the commit."""
        prepared = Prepared(size=len(batch), started=time.perf_counter())
        self.metrics.received.inc(len(batch))
        seen: set[str] = set()
        for incoming in batch:
            decision = classify(incoming, self.limits)
            if isinstance(decision, ResendReply):
                prepared.losses += _loss_rows(decision)
                prepared.ignored += 1
                self.metrics.ignored.inc()
            elif isinstance(decision, Accepted):
                if decision.row["message_id"] in seen:
                    prepared.in_batch_duplicates += 1
                    continue
                seen.add(decision.row["message_id"])
                prepared.accepted.append(decision)
            elif isinstance(decision, Snapshot):
                prepared.snapshots.append(decision.row)
                if self.snapshot_store is not None:
                    self.snapshot_store.save(decision.row["sha256"], incoming.payload)
            elif isinstance(decision, Ignored):
                prepared.ignored += 1
                self.metrics.ignored.inc()
            else:
                prepared.rejected += 1
                self._reject(incoming.topic, decision)
        return prepared

    def store(self, prepared: Prepared) -> WriteReport:
        """Commit a prepared batch; may be called again with the same batch after StorageUnavailable."""
        report = WriteReport(rejected=prepared.rejected, ignored=prepared.ignored)
        if prepared.accepted or prepared.snapshots or prepared.losses:
            try:
                with self.engine.begin() as conn:
                    self._commit(conn, prepared.accepted, prepared.snapshots, report)
                    self._record_losses(conn, prepared.losses)
            except (OperationalError, InterfaceError) as exc:
                raise StorageUnavailable(type(exc).__name__) from exc
            except SQLAlchemyError as exc:
                logger.warning("batch of %d failed (%s); storing one by one", prepared.size, type(exc).__name__)
                report = WriteReport(rejected=prepared.rejected, ignored=prepared.ignored)
                self._write_one_by_one(prepared, report)
        not_new = len(prepared.accepted) - len(report.stored_ids) - report.db_rejected
        report.duplicates = not_new + prepared.in_batch_duplicates
        self._count(report, prepared.accepted)
        self.metrics.batch_seconds.observe(time.perf_counter() - prepared.started)
        self.metrics.batch_size.observe(prepared.size)
        return report

    def _reject(self, topic: str, decision: Rejected) -> None:
        self.metrics.rejected.labels(reason=decision.reason).inc()
        logger.warning("rejected message on %r (%s): %s", topic[:200], decision.reason, decision.detail[:200])

    def _commit(
        self, conn: Connection, accepted: list[Accepted], snaps: list[dict[str, Any]], report: WriteReport
    ) -> None:
        if accepted:
            new_ids = insert_messages(conn, [a.row for a in accepted])
            report.stored_ids.extend(a.row["message_id"] for a in accepted if a.row["message_id"] in new_ids)
            new = [a for a in accepted if a.row["message_id"] in new_ids]
            self._touch_devices(conn, accepted)
            self._record_status(conn, [a for a in new if isinstance(a.message, StatusMessage)])
        if snaps:
            stmt = self._insert(snapshots).on_conflict_do_nothing(index_elements=["topic"])
            conn.execute(stmt, snaps)
            report.snapshots += len(snaps)

    def _record_losses(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Ranges a device said it no longer holds: a known, counted, dated loss (the first report wins)."""
        if not rows:
            return
        stmt = self._insert(seq_losses).on_conflict_do_nothing(index_elements=["site", "device_id", "first_seq"])
        for row in rows:
            if conn.execute(stmt, row).rowcount:
                self.metrics.seq_lost.inc(row["count"])
                logger.warning(
                    "device %s/%s no longer holds seq %d-%d: recorded as lost",
                    row["site"], row["device_id"], row["first_seq"], row["last_seq"],
                )  # fmt: skip

    def _touch_devices(self, conn: Connection, accepted: list[Accepted]) -> None:
        last_seen: dict[tuple[str, str], datetime] = {}
        for item in accepted:
            key = (item.row["site"], item.row["device_id"])
            seen = item.row["received_at"]
            last_seen[key] = max(seen, last_seen.get(key, seen))
        rows = [{"site": s, "device_id": d, "last_seen": t, "state": "unknown"} for (s, d), t in last_seen.items()]
        stmt = self._insert(devices)
        stmt = stmt.on_conflict_do_update(
            index_elements=["site", "device_id"], set_={"last_seen": stmt.excluded.last_seen}
        )
        conn.execute(stmt, rows)

    def _record_status(self, conn: Connection, statuses: list[Accepted]) -> None:
        """Status transitions for uptime, and the device's current state (newest wins, replays cannot regress it)."""
        if not statuses:
            return
        transitions = [_transition(item) for item in statuses]
        conn.execute(self._insert(status_events).on_conflict_do_nothing(index_elements=["message_id"]), transitions)
        latest: dict[tuple[str, str], tuple[dict[str, Any], StatusMessage]] = {}
        for item, transition in zip(statuses, transitions):
            key = (transition["site"], transition["device_id"])
            if key not in latest or latest[key][0]["at"] <= transition["at"]:
                latest[key] = (transition, item.message)
        for transition, message in latest.values():
            stmt = self._insert(devices).values(
                site=transition["site"],
                device_id=transition["device_id"],
                state=transition["state"],
                state_since=transition["at"],
                last_seen=transition["at"],
                agent_version=message.agent_version[:64],
                pipelines=json.dumps([p.model_dump(mode="json") for p in message.pipelines]),
            )
            newer = or_(devices.c.state_since.is_(None), devices.c.state_since <= stmt.excluded.state_since)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["site", "device_id"],
                    set_={k: stmt.excluded[k] for k in ("state", "state_since", "agent_version", "pipelines")},
                    where=newer,
                )
            )

    def _write_one_by_one(self, prepared: Prepared, report: WriteReport) -> None:
        for item in prepared.accepted:
            try:
                with self.engine.begin() as conn:
                    self._commit(conn, [item], [], report)
            except SQLAlchemyError as exc:
                report.db_rejected += 1
                report.rejected += 1
                self._reject(item.row["leaf"], Rejected("database", type(exc).__name__))
        for snap in prepared.snapshots:
            try:
                with self.engine.begin() as conn:
                    self._commit(conn, [], [snap], report)
            except SQLAlchemyError as exc:
                report.rejected += 1
                self._reject(snap["topic"], Rejected("database", type(exc).__name__))
        try:
            with self.engine.begin() as conn:
                self._record_losses(conn, prepared.losses)
        except SQLAlchemyError as exc:
            logger.warning("losses reported by devices not recorded (%s); they are reported again", type(exc).__name__)

    def _count(self, report: WriteReport, accepted: list[Accepted]) -> None:
        stored = set(report.stored_ids)
        kinds = Counter(item.row["kind"] for item in accepted if item.row["message_id"] in stored)
        for kind, n in kinds.items():
            self.metrics.stored.labels(kind=kind).inc(n)
        report.stored = len(stored)
        self.metrics.duplicates.inc(report.duplicates)
        self.metrics.snapshots.inc(report.snapshots)


def _loss_rows(reply: ResendReply) -> list[dict[str, Any]]:
    return [
        {"site": reply.site, "device_id": reply.device_id, "first_seq": a, "last_seq": b, "count": b - a + 1,
         "reported_at": reply.received_at, "reason": "not_held"}
        for a, b in reply.not_held
    ]  # fmt: skip


def _transition(item: Accepted) -> dict[str, Any]:
    message: StatusMessage = item.message
    # A live status (and the broker's last will) is timed by its arrival; a retained one is old news,
    # so the device's own clock is the better guess for when that state began.
    at = item.row["received_at"]
    if item.retained:
        at = message.published_at or message.captured_at
    return {
        "message_id": item.row["message_id"],
        "site": item.row["site"],
        "device_id": item.row["device_id"],
        "state": message.state,
        "at": at,
    }
