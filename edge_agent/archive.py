"""The delivered archive: messages the broker acknowledged, kept (bounded by age and bytes) for cmd/resend.

The broker's PUBACK only means the broker has the message; it may still drop it (a full subscriber
queue, a restart without sessions). roi_service finds the seq gaps and asks; the device replays from
here. Lives in the outbox's SQLite file and runs inside the outbox's lock and transactions.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from edge_agent.metrics import AgentMetrics
from edge_agent.seqranges import SeqRange

SCHEMA = """
CREATE TABLE IF NOT EXISTS delivered (
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL,
    size INTEGER NOT NULL,
    delivered_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS delivered_seq ON delivered(seq);
"""
_PRUNE_CHUNK = 2_000
_HYSTERESIS = 0.9  # prune to 90% of the byte bound, so a full archive is not pruned on every PUBACK


@dataclass(frozen=True)
class Archived:
    seq: int
    topic: str
    payload: bytes
    created: float
    size: int


class DeliveredArchive:
    """SQL for the `delivered` table; the caller holds the outbox lock and owns the transaction."""

    def __init__(self, db: sqlite3.Connection, max_age_s: float, max_bytes: int, metrics: AgentMetrics) -> None:
        self.db = db
        self.max_age_s = max_age_s
        self.max_bytes = max_bytes
        self.metrics = metrics
        db.executescript(SCHEMA)
        self.rows, self.bytes = db.execute("SELECT count(*), coalesce(sum(size), 0) FROM delivered").fetchone()

    @property
    def enabled(self) -> bool:
        return self.max_age_s > 0 and self.max_bytes > 0

    def keep(self, ids_sql: str, ids: list[int], now: float, count: int, size: int) -> None:
        """Copy the acknowledged rows named by `ids_sql` (first-time sends with a seq: `count` rows of `size`
        bytes, as the caller counted them in the same transaction) into the archive."""
        if not self.enabled or not count:
            return
        self.db.execute(
            "INSERT INTO delivered(seq, topic, payload, created, size, delivered_at) "
            f"SELECT seq, topic, payload, created, size, ? FROM messages WHERE id IN ({ids_sql}) "
            "AND seq IS NOT NULL AND replay = 0",
            [now, *ids],
        )
        self.rows += count
        self.bytes += size
        if self.bytes > self.max_bytes:
            self._prune_bytes()

    def _prune_bytes(self, target: int | None = None) -> None:
        target = self.bytes - int(self.max_bytes * _HYSTERESIS) if target is None else target
        freed, count, cutoff = 0, 0, 0
        while freed < target:
            rows = self.db.execute(
                "SELECT id, size FROM delivered WHERE id > ? ORDER BY id LIMIT ?", (cutoff, _PRUNE_CHUNK)
            ).fetchall()
            if not rows:
                break
            for row_id, size in rows:
                cutoff, freed, count = row_id, freed + size, count + 1
                if freed >= target:
                    break
        self._delete_through(cutoff, count, freed)

    def make_room(self) -> bool:
        """The disk is full: give up the oldest quarter of the archive (SQLite reuses the freed pages for new
        rows). Unsent results matter more than replays of delivered ones. False when there was nothing to free."""
        if self.rows == 0:
            return False
        self._prune_bytes(target=max(1, self.bytes // 4))
        return True

    def expire(self, now: float) -> None:
        """Drop archived rows older than max_age_s (oldest are lowest ids)."""
        row = self.db.execute(
            "SELECT id FROM delivered WHERE delivered_at >= ? ORDER BY id LIMIT 1", (now - self.max_age_s,)
        ).fetchone()
        if row is None:
            row = self.db.execute("SELECT coalesce(max(id), 0) + 1 FROM delivered").fetchone()
        limit = int(row[0]) - 1
        count, size = self.db.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM delivered WHERE id <= ?", (limit,)
        ).fetchone()
        self._delete_through(limit, int(count), int(size))

    def _delete_through(self, cutoff: int, count: int, size: int) -> None:
        if count:
            self.db.execute("DELETE FROM delivered WHERE id <= ?", (cutoff,))
            self.rows -= count
            self.bytes -= size

    def fetch(self, span: SeqRange) -> list[Archived]:
        rows = self.db.execute(
            "SELECT seq, topic, payload, created, size FROM delivered WHERE seq BETWEEN ? AND ? ORDER BY seq",
            span,
        ).fetchall()
        return [Archived(int(r[0]), str(r[1]), bytes(r[2]), float(r[3]), int(r[4])) for r in rows]

    def oldest_seq(self) -> int:
        row = self.db.execute("SELECT min(seq) FROM delivered").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def update_gauges(self) -> None:
        self.metrics.archive_rows.set(self.rows)
        self.metrics.archive_bytes.set(self.bytes)
        self.metrics.archive_oldest_seq.set(self.oldest_seq())
