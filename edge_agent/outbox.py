"""The durable outbox: every result and event is committed to SQLite before it is sent, deleted after PUBACK.

- WAL journal, one transaction per batch (`put_many`), so one commit serves many messages and an SD
  card sees few writes. `synchronous=normal` survives a killed process; `full` also a power cut.
- Bounded by rows, bytes and age; the oldest rows go first, counted in metrics and logged once per episode.
- Messages the broker rejects are moved to `set_aside` (kept for inspection, bounded), never retried forever.
- `next_seq()` hands out the device's message sequence: reserved in blocks in the same file, so it
  only grows across restarts and power cuts (a restart skips the rest of a block).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.config import OutboxConfig
from edge_agent.errors import OutboxError
from edge_agent.metrics import AgentMetrics

logger = logging.getLogger(__name__)

SEQ_BLOCK = 10_000
SET_ASIDE_KEEP = 1_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS set_aside (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL,
    reason TEXT NOT NULL,
    set_aside_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class StoredMessage:
    id: int
    topic: str
    payload: bytes
    created: float


class Outbox:
    """SQLite store-and-forward queue shared by the pipelines (writers) and the forwarder (reader)."""

    def __init__(self, config: OutboxConfig, metrics: AgentMetrics, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self._lock = threading.Lock()
        self._new_data = threading.Condition(threading.Lock())
        self._db = self._open(config.path)
        self._rows, self._bytes = self._db.execute("SELECT count(*), coalesce(sum(size), 0) FROM messages").fetchone()
        self._seq, self._seq_reserved = self._reserve_initial_seq()
        self._dropping: set[str] = set()
        self.last_id_at_start = self._max_id()
        self._update_gauges()
        if self._rows:
            logger.info(
                "outbox %s holds %d unsent message(s) from before; they will be replayed", config.path, self._rows
            )

    def _open(self, path: Path) -> sqlite3.Connection:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.config.synchronous.upper()}")
            db.execute("PRAGMA wal_autocheckpoint=4000")  # fewer checkpoints: kinder to SD cards
            db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(f"cannot open the outbox {path}: {exc}; check the volume is writable") from exc
        return db

    # ------------------------------------------------------------ sequence numbers

    def _reserve_initial_seq(self) -> tuple[int, int]:
        row = self._db.execute("SELECT value FROM meta WHERE key='seq_reserved'").fetchone()
        start = int(row[0]) if row else 0
        reserved = start + SEQ_BLOCK
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('seq_reserved', ?)", (reserved,))
        return start, reserved

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            if self._seq >= self._seq_reserved:
                self._seq_reserved += SEQ_BLOCK
                self._db.execute("UPDATE meta SET value=? WHERE key='seq_reserved'", (self._seq_reserved,))
            return self._seq

    # ------------------------------------------------------------ writing

    def put(self, topic: str, payload: bytes) -> None:
        self.put_many([(topic, payload)])

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Commit messages in one transaction; returns once they are durable."""
        now = self.clock()
        rows = [(topic, payload, now, len(payload)) for topic, payload in items]
        if not rows:
            return
        started = time.perf_counter()
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT INTO messages(topic, payload, created, size) VALUES (?,?,?,?)", rows)
                self._rows += len(rows)
                self._bytes += sum(r[3] for r in rows)
                self._enforce_size_bounds()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"outbox {self.config.path}: cannot store {len(rows)} message(s): {exc}") from exc
        self.metrics.outbox_commit_seconds.observe(time.perf_counter() - started)
        self._update_gauges()
        with self._new_data:
            self._new_data.notify_all()

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            logger.debug("rollback after a failed outbox write failed too")
        self._rows, self._bytes = self._db.execute("SELECT count(*), coalesce(sum(size),0) FROM messages").fetchone()

    def _enforce_size_bounds(self) -> None:
        """Drop the oldest rows past max_rows or max_bytes (called inside the write transaction)."""
        excess_rows = self._rows - self.config.max_rows
        if excess_rows > 0:
            self._drop_oldest(f"id IN (SELECT id FROM messages ORDER BY id LIMIT {int(excess_rows)})", "max_rows")
        if self._bytes > self.config.max_bytes:
            cutoff = self._db.execute(
                "SELECT id FROM (SELECT id, sum(size) OVER (ORDER BY id DESC) AS kept FROM messages) "
                "WHERE kept > ? ORDER BY id DESC LIMIT 1",
                (self.config.max_bytes,),
            ).fetchone()
            if cutoff:
                self._drop_oldest(f"id <= {int(cutoff[0])}", "max_bytes")
        if excess_rows <= 0 and self._bytes <= self.config.max_bytes:
            self._end_episode("max_rows")
            self._end_episode("max_bytes")

    def _drop_oldest(self, where: str, reason: str) -> None:
        count, size = self._db.execute(f"SELECT count(*), coalesce(sum(size),0) FROM messages WHERE {where}").fetchone()
        if not count:
            return
        self._db.execute(f"DELETE FROM messages WHERE {where}")
        self._rows -= count
        self._bytes -= size
        self.metrics.outbox_dropped.labels(reason).inc(count)
        if reason not in self._dropping:
            self._dropping.add(reason)
            logger.warning(
                "outbox bound %s reached: dropping the oldest messages (%d so far in this episode); "
                "raise outbox.%s or restore the broker link",
                reason,
                count,
                reason,
            )

    def _end_episode(self, reason: str) -> None:
        if reason in self._dropping:
            self._dropping.discard(reason)
            logger.info("outbox back under its %s bound", reason)

    def expire(self) -> None:
        """Drop rows older than max_age_s; the forwarder calls this periodically."""
        cutoff = self.clock() - self.config.max_age_s
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._drop_oldest(f"created < {cutoff!r}", "max_age")
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                logger.warning("outbox expiry failed: %s", exc)
                return
            if self._rows == 0 or self._oldest_created() >= cutoff:
                self._end_episode("max_age")
        self._update_gauges()

    # ------------------------------------------------------------ reading and acknowledging

    def fetch(self, after_id: int, limit: int) -> list[StoredMessage]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, created FROM messages WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
            ).fetchall()
        return [StoredMessage(int(r[0]), str(r[1]), bytes(r[2]), float(r[3])) for r in rows]

    def ack(self, ids: list[int]) -> None:
        """Delete acknowledged rows (one transaction for many PUBACKs)."""
        if not ids:
            return
        with self._lock:
            placeholders = ",".join("?" * len(ids))
            count, size = self._db.execute(
                f"SELECT count(*), coalesce(sum(size),0) FROM messages WHERE id IN ({placeholders})", ids
            ).fetchone()
            self._db.execute(f"DELETE FROM messages WHERE id IN ({placeholders})", ids)
            self._rows -= count
            self._bytes -= size
        self.metrics.outbox_sent.inc(count)
        self._update_gauges()

    def set_aside(self, message: StoredMessage, reason: str) -> None:
        """Move a message the broker will not take out of the queue, keeping the newest few for inspection."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR REPLACE INTO set_aside(id, topic, payload, created, reason, set_aside_at)"
                " VALUES (?,?,?,?,?,?)",
                (message.id, message.topic, message.payload, message.created, reason, self.clock()),
            )
            deleted = self._db.execute("DELETE FROM messages WHERE id=?", (message.id,)).rowcount
            self._db.execute(
                "DELETE FROM set_aside WHERE id NOT IN (SELECT id FROM set_aside ORDER BY id DESC LIMIT ?)",
                (SET_ASIDE_KEEP,),
            )
            self._db.execute("COMMIT")
            if deleted:
                self._rows -= 1
                self._bytes -= len(message.payload)
        self.metrics.outbox_set_aside.labels(reason).inc()
        logger.warning(
            "message %d on %s set aside (%s, %d bytes)", message.id, message.topic, reason, len(message.payload)
        )
        self._update_gauges()

    def wait_for_data(self, timeout_s: float) -> None:
        with self._new_data:
            self._new_data.wait(timeout_s)

    # ------------------------------------------------------------ state

    @property
    def backlog(self) -> int:
        return int(self._rows)

    def oldest_age(self) -> float:
        with self._lock:
            oldest = self._oldest_created()
        return max(0.0, self.clock() - oldest) if self._rows else 0.0

    def _oldest_created(self) -> float:
        row = self._db.execute("SELECT created FROM messages ORDER BY id LIMIT 1").fetchone()
        return float(row[0]) if row else self.clock()

    def _max_id(self) -> int:
        row = self._db.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()
        return int(row[0])

    def _update_gauges(self) -> None:
        self.metrics.outbox_backlog.set(self._rows)

    def refresh_age_gauge(self) -> None:
        self.metrics.outbox_oldest_age.set(self.oldest_age())

    def set_aside_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM set_aside").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
