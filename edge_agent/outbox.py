"""The durable outbox: every result and event is committed to SQLite before it is sent, archived after PUBACK.

- WAL journal, one transaction per batch (`put_many`), so one commit serves many messages and an SD
  card sees few writes. `synchronous=full` (the default) survives a power cut; `normal` only a killed process.
- Bounded by rows, bytes and age; the oldest rows go first, counted in metrics and logged once per episode.
- When the file cannot be written (disk full, read-only, I/O error) new rows wait in a bounded memory
  buffer (`spillover.py`) and are written when the disk takes them again; only overflow is dropped, counted.
- Acknowledged messages move to the delivered archive (`archive.py`) so `resend()` can replay what the
  cloud reports missing, and name the seqs it no longer holds.
- Messages the broker rejects are moved to `set_aside` (kept for inspection, bounded), never retried forever.
- `next_seq()` hands out the device's message sequence. The highest seq stored is kept in the same
  transaction as the rows, so after a restart or power cut the sequence goes on without a hole (a seq
  handed out but never stored is reused: nothing ever carried it).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.archive import DeliveredArchive
from edge_agent.config import OutboxConfig
from edge_agent.errors import OutboxError
from edge_agent.metrics import AgentMetrics
from edge_agent.seqranges import SeqRange, clip, missing
from edge_agent.spillover import RateLimitedLog, Row, SpillBuffer

logger = logging.getLogger(__name__)

SET_ASIDE_KEEP = 1_000
SPILL_RETRY_S = 1.0  # while the disk refuses writes, try it again at most this often
STORE_CHUNK = 2_000  # rows per transaction when the memory buffer goes back to disk
RESEND_BUDGET = 100_000  # seqs one cmd/resend may ask for; the cloud asks again for the rest
_SEQ_FIELD = re.compile(rb'"seq":(\d{1,19})[,}]')
Connect = Callable[[str], sqlite3.Connection]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL,
    size INTEGER NOT NULL,
    seq INTEGER,
    replay INTEGER NOT NULL DEFAULT 0
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
    replay: bool = False


@dataclass(frozen=True)
class ResendOutcome:
    """What one cmd/resend did: messages queued again, and the asked-for ranges the device no longer holds."""

    queued: int
    not_held: list[SeqRange] = field(default_factory=list)


def seq_of(payload: bytes) -> int | None:
    """The envelope's seq of a stored JSON payload (None for binary snapshots)."""
    if not payload.startswith(b"{"):
        return None
    match = _SEQ_FIELD.search(payload, 0, 400)
    return int(match.group(1)) if match else None


def _default_connect(path: str) -> sqlite3.Connection:
    return sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)


class Outbox:
    """SQLite store-and-forward queue shared by the pipelines (writers) and the forwarder (reader)."""

    def __init__(
        self,
        config: OutboxConfig,
        metrics: AgentMetrics,
        clock: Callable[[], float] = time.time,
        connect: Connect = _default_connect,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self._lock = threading.Lock()
        self._new_data = threading.Condition(threading.Lock())
        self._db = self._open(config.path, connect)
        self._rows, self._bytes = self._db.execute("SELECT count(*), coalesce(sum(size), 0) FROM messages").fetchone()
        self.archive = DeliveredArchive(self._db, config.archive_max_age_s, config.archive_max_bytes, metrics)
        self._seq = self._seq_stored = self._initial_seq()
        self._dropping: set[str] = set()
        self._spill = SpillBuffer(config.memory_buffer_bytes)
        self._spill_reason = ""
        self._spill_retry_at = 0.0
        self._disk_log = RateLimitedLog(logger)
        self.last_id_at_start = self._max_id()
        self._update_gauges()
        if self._rows:
            logger.info(
                "outbox %s holds %d unsent message(s) from before; they will be replayed", config.path, self._rows
            )

    def _open(self, path: Path, connect: Connect) -> sqlite3.Connection:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = connect(str(path))
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.config.synchronous.upper()}")
            db.execute("PRAGMA wal_autocheckpoint=4000")  # fewer checkpoints: kinder to SD cards
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {verdict}")
            db.executescript(_SCHEMA)
            _add_missing_columns(db)
            # Resend replays go out ahead of the backlog (`fetch_replays`): a small index of them alone.
            db.execute("CREATE INDEX IF NOT EXISTS messages_replays ON messages(id) WHERE replay = 1")
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(
                f"cannot open the outbox {path} (outbox.path): {exc}; check the volume is writable, "
                "or move a corrupt file aside"
            ) from exc
        return db

    # ------------------------------------------------------------ sequence numbers

    def _initial_seq(self) -> int:
        """Go on after the highest seq stored (files from before kept a reserved block: start past it)."""
        rows = dict(self._db.execute("SELECT key, value FROM meta WHERE key IN ('seq_last', 'seq_reserved')"))
        return int(rows.get("seq_last", rows.get("seq_reserved", 0)))

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def current_seq(self) -> int:
        """The last seq handed out, for messages that do not pass through the outbox (status, model, last will)."""
        return self._seq

    # ------------------------------------------------------------ writing

    def put(self, topic: str, payload: bytes) -> None:
        self.put_many([(topic, payload)])

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Commit messages in one transaction; returns once they are durable, or held in memory if the disk
        refuses them (the overflow of that buffer is dropped and counted, never raised)."""
        now = self.clock()
        rows: list[Row] = [(topic, payload, now, len(payload), seq_of(payload)) for topic, payload in items]
        if not rows:
            return
        started = time.perf_counter()
        with self._lock:
            if self._spill and time.monotonic() < self._spill_retry_at:
                self._hold_in_memory(rows, self._spill_reason, attempted=False)
                return
            if not self._store(self._spill.take_all() + rows):
                return
        self.metrics.outbox_commit_seconds.observe(time.perf_counter() - started)
        self._written()

    def _store(self, rows: list[Row]) -> bool:
        """Called with the lock held: write rows, or keep them in memory when the disk refuses (False).

        In chunks, so the memory buffer goes back to a disk with little room bit by bit (SQLite checkpoints
        its WAL between commits) instead of needing room for all of it in one transaction."""
        for start in range(0, len(rows), STORE_CHUNK):
            chunk = rows[start : start + STORE_CHUNK]
            try:
                self._write(chunk)
            except sqlite3.Error as exc:
                self._rollback()
                if not (_is_full(exc) and self._make_room() and self._retry_write(chunk)):
                    self._hold_in_memory(rows[start:], str(exc))
                    return False
        self._spill_recovered()
        return True

    def _make_room(self) -> bool:
        """The disk is full: fold the WAL back into the file and truncate it (it holds up to 16 MB between
        checkpoints), then give up the oldest quarter of the archive. True when anything was freed."""
        try:
            busy, frames, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            folded = not busy and frames > 0
        except sqlite3.Error:
            folded = False
        try:
            self._db.execute("BEGIN IMMEDIATE")
            pruned = self.archive.make_room()
            self._db.execute("COMMIT")
        except sqlite3.Error:
            self._rollback()
            self._recount_archive()
            pruned = False
        if folded or pruned:
            also = " and gave up the oldest quarter of the delivered archive" if pruned else ""
            self._disk_log.warning("outbox %s: the disk is full; folded the WAL back%s", self.config.path, also)
        return folded or pruned

    def _retry_write(self, rows: list[Row]) -> bool:
        try:
            self._write(rows)
        except sqlite3.Error:
            self._rollback()
            return False
        return True

    def _recount_archive(self) -> None:
        try:
            self.archive.rows, self.archive.bytes = self._db.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM delivered"
            ).fetchone()
        except sqlite3.Error:
            logger.debug("cannot recount the delivered archive")

    def _write(self, rows: list[Row]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        self._db.executemany("INSERT INTO messages(topic, payload, created, size, seq) VALUES (?,?,?,?,?)", rows)
        top = max((r[4] for r in rows if r[4] is not None), default=0)
        if top > self._seq_stored:
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('seq_last', ?)", (top,))
        self._rows += len(rows)
        self._bytes += sum(r[3] for r in rows)
        self._enforce_size_bounds()
        self._db.execute("COMMIT")
        self._seq_stored = max(self._seq_stored, top)

    def _written(self) -> None:
        self._update_gauges()
        with self._new_data:
            self._new_data.notify_all()

    def _hold_in_memory(self, rows: list[Row], reason: str, attempted: bool = True) -> None:
        """Called with the lock held: keep rows in the bounded buffer; count what overflows. After a failed
        write (`attempted`) the disk is tried again in SPILL_RETRY_S, not sooner."""
        self._spill_reason = reason
        if attempted:
            self._spill_retry_at = time.monotonic() + SPILL_RETRY_S
        dropped = self._spill.add(rows)
        if dropped:
            self.metrics.outbox_dropped.labels("disk_full").inc(dropped)
        self.metrics.outbox_in_memory.set(len(self._spill))
        self._disk_log.warning(
            "outbox %s cannot write (%s): %d message(s) held in memory (%d bytes of %d), %d dropped so far; "
            "free space on the volume or check it is writable",
            self.config.path,
            reason,
            len(self._spill),
            self._spill.bytes,
            self._spill.max_bytes,
            self.dropped_total(),
        )

    def _spill_recovered(self) -> None:
        if self._spill_reason:
            logger.info("outbox %s writes again; the messages held in memory are stored", self.config.path)
            self._spill_reason = ""
            self._disk_log.reset()
            self.metrics.outbox_in_memory.set(0)

    def retry_held(self) -> None:
        """Write the memory buffer to disk if the disk takes it now (the forwarder calls this periodically)."""
        with self._lock:
            if not self._spill or time.monotonic() < self._spill_retry_at:
                return
            if not self._store(self._spill.take_all()):
                return
        self._written()

    def dropped_total(self) -> int:
        """Every message dropped since start, whatever the reason: the `dropped` figure sent to the cloud."""
        total = 0.0
        for metric in self.metrics.outbox_dropped.collect():
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
        return int(total)

    def health(self) -> tuple[bool, str]:
        if self._spill_reason:
            return False, f"outbox cannot write ({self._spill_reason}): {len(self._spill)} held in memory"
        return True, "ok"

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            logger.debug("rollback after a failed outbox write failed too")
        try:
            self._rows, self._bytes = self._db.execute(
                "SELECT count(*), coalesce(sum(size),0) FROM messages"
            ).fetchone()
        except sqlite3.Error:
            logger.debug("cannot recount the outbox after a failed write")

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
        """Drop rows older than max_age_s and archived rows older than archive_max_age_s (called periodically)."""
        now = self.clock()
        cutoff = now - self.config.max_age_s
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._drop_oldest(f"created < {cutoff!r}", "max_age")
                if self.archive.enabled:
                    self.archive.expire(now)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                self._disk_log.warning("outbox expiry failed: %s", exc)
                return
            if self._rows == 0 or self._oldest_created() >= cutoff:
                self._end_episode("max_age")
            self.archive.update_gauges()
        self._update_gauges()

    # ------------------------------------------------------------ reading and acknowledging

    def fetch(self, after_id: int, limit: int, skip_replays: bool = False) -> list[StoredMessage]:
        """Rows after `after_id` in the order they were written; `skip_replays` leaves out the resend replays
        (the forwarder takes those first, with `fetch_replays`)."""
        only = " AND replay = 0" if skip_replays else ""
        return self._select(f"WHERE id > ?{only} ORDER BY id LIMIT ?", (after_id, limit))

    def fetch_replays(self, after_id: int, limit: int) -> list[StoredMessage]:
        """Resend replays after `after_id`: what roi_service asked for again, sent before the rest of a backlog so
        a gap closes while the device is still catching up."""
        return self._select("WHERE replay = 1 AND id > ? ORDER BY id LIMIT ?", (after_id, limit))

    def _select(self, where: str, args: tuple[int, int]) -> list[StoredMessage]:
        with self._lock:
            query = f"SELECT id, topic, payload, created, replay FROM messages {where}"
            rows = self._db.execute(query, args).fetchall()
        return [StoredMessage(int(r[0]), str(r[1]), bytes(r[2]), float(r[3]), bool(r[4])) for r in rows]

    def ack(self, ids: list[int]) -> None:
        """Move acknowledged rows to the delivered archive (one transaction for many PUBACKs). On a full disk the
        oldest archived rows make room; failing that, the rows are deleted unarchived (the disk comes first).

        Raises OutboxError when the file cannot be written at all; the caller keeps the ids and tries again."""
        if not ids:
            return
        with self._lock:
            try:
                count, size = self._ack_once(ids, archive=True)
            except sqlite3.Error as exc:
                self._rollback()
                self._recount_archive()
                count, size = self._ack_on_full_disk(ids, exc)
            self._rows -= count
            self._bytes -= size
        self.metrics.outbox_sent.inc(count)
        self._update_gauges()

    def _ack_on_full_disk(self, ids: list[int], exc: sqlite3.Error) -> tuple[int, int]:
        for archive in (True, False):
            if not _is_full(exc) or (archive and not self._make_room()):
                continue
            try:
                return self._ack_once(ids, archive)
            except sqlite3.Error as again:
                self._rollback()
                self._recount_archive()
                exc = again
        raise OutboxError(f"outbox {self.config.path}: cannot record {len(ids)} PUBACK(s): {exc}") from exc

    def _ack_once(self, ids: list[int], archive: bool) -> tuple[int, int]:
        placeholders = ",".join("?" * len(ids))
        self._db.execute("BEGIN IMMEDIATE")
        count, size, kept, kept_size = self._db.execute(
            "SELECT count(*), coalesce(sum(size),0), coalesce(sum(seq IS NOT NULL AND replay = 0),0), "
            "coalesce(sum(CASE WHEN seq IS NOT NULL AND replay = 0 THEN size END),0) "
            f"FROM messages WHERE id IN ({placeholders})",
            ids,
        ).fetchone()
        if archive:
            self.archive.keep(placeholders, ids, self.clock(), int(kept), int(kept_size))
        self._db.execute(f"DELETE FROM messages WHERE id IN ({placeholders})", ids)
        self._db.execute("COMMIT")
        return int(count), int(size)

    def resend(self, ranges: list[SeqRange]) -> ResendOutcome:
        """Queue the archived messages of `ranges` again (sent with ``replayed: true``); name the seqs held nowhere.

        Seqs still waiting in the outbox or in memory are held (they are on their way) and not queued twice."""
        with self._lock:
            spans = clip(ranges, max(self._seq, self._seq_stored), RESEND_BUDGET)
            in_memory = self._spill.seqs()
            queued: list[Row] = []
            not_held: list[SeqRange] = []
            for span in spans:
                waiting = {int(r[0]) for r in self._db.execute(
                    "SELECT seq FROM messages WHERE seq BETWEEN ? AND ?", span)}  # fmt: skip
                archived = [a for a in self.archive.fetch(span) if a.seq not in waiting]
                queued += [(a.topic, a.payload, a.created, a.size, a.seq) for a in archived]
                not_held += missing(span, waiting | in_memory | {a.seq for a in archived})
            self._queue_replays(queued)
        self.metrics.resend_requests.inc()
        self.metrics.resend_replayed.inc(len(queued))
        self.metrics.resend_not_held.inc(sum(last - first + 1 for first, last in not_held))
        if queued:
            self._written()
        return ResendOutcome(len(queued), not_held)

    def _queue_replays(self, rows: list[Row]) -> None:
        if not rows:
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO messages(topic, payload, created, size, seq, replay) VALUES (?,?,?,?,?,1)", rows
            )
            self._rows += len(rows)
            self._bytes += sum(r[3] for r in rows)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise OutboxError(f"outbox {self.config.path}: cannot queue {len(rows)} replay(s): {exc}") from exc

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
        return int(self._rows) + len(self._spill)

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
        self.metrics.archive_rows.set(self.archive.rows)
        self.metrics.archive_bytes.set(self.archive.bytes)

    def refresh_age_gauge(self) -> None:
        self.metrics.outbox_oldest_age.set(self.oldest_age())
        with self._lock:
            self.archive.update_gauges()

    def set_aside_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM set_aside").fetchone()[0])

    def close(self) -> None:
        """Write what waits in memory one last time; what the disk still refuses is lost: counted and logged."""
        with self._lock:
            if self._spill and not self._store(self._spill.take_all()):
                lost = len(self._spill)
                self._spill.take_all()
                self.metrics.outbox_dropped.labels("disk_full").inc(lost)
                logger.error("outbox %s: %d message(s) held in memory are lost at shutdown (the disk is full)",
                             self.config.path, lost)  # fmt: skip
            self._db.close()


def _is_full(exc: sqlite3.Error) -> bool:
    return "full" in str(exc).lower()


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Outbox files written before the delivered archive lack the seq and replay columns."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
    if "seq" not in columns:
        db.execute("ALTER TABLE messages ADD COLUMN seq INTEGER")
    if "replay" not in columns:
        db.execute("ALTER TABLE messages ADD COLUMN replay INTEGER NOT NULL DEFAULT 0")
