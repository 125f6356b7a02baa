"""Fast exactly-once batch insert of device messages: one statement per batch, duplicates skipped by the database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, select

from roi_service.db.schema import messages

# Inserted columns, with the PostgreSQL array type for the unnest() insert.
PG_COLUMNS: tuple[tuple[str, str], ...] = (
    ("message_id", "varchar"),
    ("kind", "varchar"),
    ("site", "varchar"),
    ("device_id", "varchar"),
    ("leaf", "varchar"),
    ("task", "varchar"),
    ("pipeline", "varchar"),
    ("seq", "bigint"),
    ("captured_at", "timestamp"),
    ("received_at", "timestamp"),
    ("replayed", "boolean"),
    ("total_ms", "float8"),
    ("flag", "boolean"),
    ("event", "varchar"),
    ("payload", "text"),
)
# %b: binary parameters, so psycopg sends arrays without escaping every element as text.
_PG_INSERT = (
    f"INSERT INTO messages ({', '.join(name for name, _ in PG_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'%b::{kind}[]' for _, kind in PG_COLUMNS)}) "
    "ON CONFLICT (message_id) DO NOTHING RETURNING message_id"
)
_CHUNK = 500


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo is not None else value


def _insert_postgresql(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
    # One short statement with 15 binary array parameters: a multi-row VALUES list of 15,000 placeholders
    # costs psycopg more to build and parse per batch than PostgreSQL needs to insert the rows.
    columns: list[list[Any]] = [[] for _ in PG_COLUMNS]
    for row in rows:
        for values, (name, _) in zip(columns, PG_COLUMNS):
            value = row[name]
            values.append(_naive_utc(value) if isinstance(value, datetime) else value)
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.execute(_PG_INSERT, columns)
        return {str(row[0]) for row in cursor.fetchall()}


_SQLITE_INSERT = (
    f"INSERT INTO messages ({', '.join(name for name, _ in PG_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in PG_COLUMNS)}) ON CONFLICT (message_id) DO NOTHING"
)


def _sqlite_value(value: Any) -> Any:
    # The text form SQLAlchemy's SQLite DateTime reads back (naive UTC, microseconds).
    if isinstance(value, datetime):
        return _naive_utc(value).isoformat(sep=" ", timespec="microseconds")
    return value


def _insert_sqlite(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
    # SQLite has one writer at a time, so "which ids exist" followed by INSERT ... DO NOTHING in the same
    # transaction is exact; a plain DB-API executemany skips per-row bind processing and RETURNING.
    ids = [row["message_id"] for row in rows]
    existing: set[str] = set()
    for i in range(0, len(ids), _CHUNK):
        query = select(messages.c.message_id).where(messages.c.message_id.in_(ids[i : i + _CHUNK]))
        existing.update(conn.execute(query).scalars())
    params = [tuple(_sqlite_value(row[name]) for name, _ in PG_COLUMNS) for row in rows]
    conn.exec_driver_sql(_SQLITE_INSERT, params)
    return set(ids) - existing


def insert_messages(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert rows (unique message_id within the batch); returns the message_ids that were new."""
    if not rows:
        return set()
    if conn.dialect.name == "postgresql":
        return _insert_postgresql(conn, rows)
    return _insert_sqlite(conn, rows)
