"""Table definitions (SQLAlchemy Core): one table of device messages plus the few the API writes."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)


class UtcDateTime(TypeDecorator[datetime]):
    """Stores naive UTC and hands back aware UTC, so SQLite and PostgreSQL read back the same instant."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=timezone.utc)


# BIGINT keys on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

messages = Table(
    "messages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("message_id", String(36), nullable=False, unique=True, comment="Envelope message_id: the dedup key."),
    Column("kind", String(16), nullable=False),
    Column("site", String(64), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("leaf", String(200), nullable=False, comment="Topic below edge/v1/{site}/{device}/."),
    Column("task", String(32)),
    Column("pipeline", String(64)),
    Column("seq", BigInteger, nullable=False),
    Column("captured_at", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("replayed", Boolean, nullable=False),
    Column("total_ms", Float, comment="Result: end-to-end inference milliseconds."),
    Column("flag", Boolean, comment="Result: defect failed, window anomalous or a shelf zone low/out."),
    Column("event", String(32), comment="Event: the event type."),
    Column("payload", Text, nullable=False, comment="The validated JSON payload as received."),
)
Index("ix_messages_kind_captured", messages.c.kind, messages.c.captured_at)
Index(
    "ix_messages_device_kind_captured", messages.c.site, messages.c.device_id, messages.c.kind, messages.c.captured_at
)
Index("ix_messages_device_seq", messages.c.site, messages.c.device_id, messages.c.seq)

snapshots = Table(
    "snapshots",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("topic", String(400), nullable=False, unique=True),
    Column("site", String(64), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("task", String(32), nullable=False),
    Column("snapshot_id", String(200), nullable=False),
    Column("size_bytes", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
)

status_events = Table(
    "status_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("message_id", String(36), nullable=False, unique=True),
    Column("site", String(64), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("at", UtcDateTime, nullable=False, comment="When the state began, as well as the service can tell."),
)
Index("ix_status_events_device_at", status_events.c.site, status_events.c.device_id, status_events.c.at)

devices = Table(
    "devices",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("device_id", String(64), primary_key=True),
    Column("state", String(16), nullable=False, default="unknown"),
    Column("state_since", UtcDateTime),
    Column("last_seen", UtcDateTime, nullable=False),
    Column("agent_version", String(64), nullable=False, default=""),
    Column("pipelines", Text, nullable=False, default="[]"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("event_message_id", String(36), primary_key=True),
    Column("verdict", String(16), nullable=False, comment="confirmed | false_alarm"),
    Column("note", Text, nullable=False, default=""),
    Column("created_at", UtcDateTime, nullable=False),
)

use_cases = Table(
    "use_cases",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(120), nullable=False, unique=True),
    Column("params", Text, nullable=False, comment="UseCaseParams as JSON."),
    Column("updated_at", UtcDateTime, nullable=False),
)

readiness = Table(
    "readiness",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(120), nullable=False),
    Column("scores", Text, nullable=False, comment="ReadinessScores as JSON."),
    Column("created_at", UtcDateTime, nullable=False),
)

# ---------------------------------------------------------------- end-to-end acknowledgement by seq (0002)

device_seq = Table(
    "device_seq",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("device_id", String(64), primary_key=True),
    Column("high_water", BigInteger, nullable=False, comment="Every tracked seq up to here is stored or a known loss."),
    Column("max_seen", BigInteger, nullable=False, comment="Highest tracked seq scanned so far."),
    Column("updated_at", UtcDateTime, nullable=False),
)

seq_gaps = Table(
    "seq_gaps",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("site", String(64), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("opened_at", UtcDateTime, nullable=False, comment="When the scan first saw this gap."),
    Column("last_asked_at", UtcDateTime, comment="Last cmd/resend that named it."),
    Column("asks", Integer, nullable=False, default=0),
)
Index("ix_seq_gaps_device_first", seq_gaps.c.site, seq_gaps.c.device_id, seq_gaps.c.first_seq, unique=True)

seq_losses = Table(
    "seq_losses",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("site", String(64), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("reported_at", UtcDateTime, nullable=False, comment="When the device said it no longer holds them."),
    Column("reason", String(32), nullable=False, default="not_held"),
)
Index("ix_seq_losses_device_first", seq_losses.c.site, seq_losses.c.device_id, seq_losses.c.first_seq, unique=True)

leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True, comment="What the lease is for, e.g. resend."),
    Column("holder", String(120), nullable=False, comment="The replica that holds it."),
    Column("expires_at", UtcDateTime, nullable=False),
)

# ---------------------------------------------------------------- who changed the owner's figures (0003)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("who", String(120), nullable=False, comment="The name the editor signed the change with."),
    Column("what", String(32), nullable=False, comment="use_case or readiness."),
    Column("target", String(120), nullable=False, comment="The use case or assessment name."),
    Column("before", Text, nullable=True, comment="JSON before the change; null when created."),
    Column("after", Text, nullable=True, comment="JSON after the change; null when deleted."),
    Index("ix_audit_log_at", "at"),
)
