"""The SQLite outbox: durable order, bounds that drop oldest and count it, sequence numbers that only grow."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from edge_agent.config import OutboxConfig
from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import Outbox


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, clock: Clock | None = None, **bounds: float) -> tuple[Outbox, AgentMetrics]:
    metrics = AgentMetrics(CollectorRegistry())
    config = OutboxConfig(path=tmp_path / "outbox.db", **bounds)  # type: ignore[arg-type]
    return Outbox(config, metrics, clock=clock or Clock()), metrics


def sample(metrics: AgentMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_messages_survive_a_restart_in_order(tmp_path: Path) -> None:
    box, _ = make(tmp_path)
    box.put_many([("t/a", b"1"), ("t/b", b"2")])
    box.put("t/c", b"3")
    box.close()
    again, _ = make(tmp_path)
    rows = again.fetch(0, 10)
    assert [(r.topic, r.payload) for r in rows] == [("t/a", b"1"), ("t/b", b"2"), ("t/c", b"3")]
    assert again.backlog == 3


def test_ack_deletes_only_acknowledged_rows(tmp_path: Path) -> None:
    box, metrics = make(tmp_path)
    box.put_many([("t", str(i).encode()) for i in range(5)])
    rows = box.fetch(0, 10)
    box.ack([rows[0].id, rows[2].id])
    assert [r.payload for r in box.fetch(0, 10)] == [b"1", b"3", b"4"]
    assert sample(metrics, "edge_outbox_sent_total") == 2
    assert sample(metrics, "edge_outbox_backlog") == 3


def test_row_bound_drops_oldest_and_counts(tmp_path: Path) -> None:
    box, metrics = make(tmp_path, max_rows=100)
    for start in range(0, 250, 50):
        box.put_many([("t", str(i).encode()) for i in range(start, start + 50)])
    rows = box.fetch(0, 1000)
    assert len(rows) == 100
    assert rows[0].payload == b"150" and rows[-1].payload == b"249"
    assert sample(metrics, "edge_outbox_dropped_total", reason="max_rows") == 150


def test_byte_bound_drops_oldest(tmp_path: Path) -> None:
    box, metrics = make(tmp_path, max_bytes=1024 * 1024)
    blob = b"x" * 100_000
    for _ in range(15):
        box.put("t", blob)
    assert box.backlog == 10
    assert sample(metrics, "edge_outbox_dropped_total", reason="max_bytes") == 5


def test_age_bound_expires_old_rows(tmp_path: Path) -> None:
    clock = Clock()
    box, metrics = make(tmp_path, clock=clock, max_age_s=60)
    box.put("t", b"old")
    clock.now += 120
    box.put("t", b"new")
    box.expire()
    assert [r.payload for r in box.fetch(0, 10)] == [b"new"]
    assert sample(metrics, "edge_outbox_dropped_total", reason="max_age") == 1


def test_logs_drop_once_per_episode(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    box, _ = make(tmp_path, max_rows=100)
    with caplog.at_level("WARNING"):
        for _ in range(10):
            box.put_many([("t", b"x")] * 50)
    assert sum("bound max_rows reached" in r.getMessage() for r in caplog.records) == 1


def test_set_aside_removes_from_queue_and_counts(tmp_path: Path) -> None:
    box, metrics = make(tmp_path)
    box.put_many([("t", b"poison"), ("t", b"fine")])
    first = box.fetch(0, 1)[0]
    box.set_aside(first, "too_large")
    assert [r.payload for r in box.fetch(0, 10)] == [b"fine"]
    assert box.set_aside_count() == 1
    assert sample(metrics, "edge_outbox_set_aside_total", reason="too_large") == 1


def msg(seq: int, body: str = "x") -> tuple[str, bytes]:
    return "edge/v1/lab/dev1/classify/result", f'{{"schema_version":1,"seq":{seq},"b":"{body}"}}'.encode()


def test_sequence_goes_on_without_a_hole_across_restarts(tmp_path: Path) -> None:
    box, _ = make(tmp_path)
    first = [box.next_seq() for _ in range(3)]
    box.put_many([msg(s) for s in first])
    box.next_seq()  # handed out, never stored: nothing carried it, so it may be handed out again
    box.close()
    again, _ = make(tmp_path)
    assert first == [1, 2, 3]
    assert again.next_seq() == 4
    assert again.current_seq() == 4


def test_a_file_with_a_reserved_block_starts_past_it(tmp_path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(tmp_path / "outbox.db")
    db.executescript(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,"
        " created REAL NOT NULL, size INTEGER NOT NULL);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT INTO meta VALUES ('seq_reserved', 20000);"
        "INSERT INTO messages(topic, payload, created, size) VALUES ('t', X'7b7d', 1, 2);"
    )
    db.commit()
    db.close()
    box, _ = make(tmp_path)
    assert box.next_seq() == 20001
    assert [r.payload for r in box.fetch(0, 10)] == [b"{}"], "rows from before the new columns are kept"


def test_acknowledged_messages_go_to_the_archive_and_can_be_resent(tmp_path: Path) -> None:
    box, metrics = make(tmp_path)
    box.put_many([msg(s) for s in range(1, 101)])
    box.ack([r.id for r in box.fetch(0, 1000)])
    assert box.backlog == 0
    assert sample(metrics, "edge_outbox_archive_rows") == 100
    outcome = box.resend([(10, 19), (95, 120)])
    assert outcome.queued == 16
    assert outcome.not_held == [], "seqs above the last one handed out are not reported lost"
    rows = box.fetch(0, 1000)
    assert all(r.replay for r in rows)
    assert [r.payload for r in rows] == [msg(s)[1] for s in [*range(10, 20), *range(95, 101)]]
    again = box.resend([(10, 12)])
    assert again.queued == 0 and again.not_held == [], "a seq still waiting to go out is held, not queued twice"
    box.ack([r.id for r in rows])
    assert sample(metrics, "edge_outbox_archive_rows") == 100, "a replay is not archived a second time"


def test_resend_names_the_seqs_the_device_no_longer_holds(tmp_path: Path) -> None:
    clock = Clock()
    box, metrics = make(tmp_path, clock=clock, archive_max_age_s=3600)
    for _ in range(30):
        box.next_seq()
    box.put_many([msg(s) for s in range(1, 21)])
    box.ack([r.id for r in box.fetch(0, 1000)])
    clock.now += 7200
    box.put_many([msg(s) for s in range(21, 26)])
    box.ack([r.id for r in box.fetch(0, 1000)])
    box.expire()
    assert sample(metrics, "edge_outbox_archive_rows") == 5
    assert sample(metrics, "edge_outbox_archive_oldest_seq") == 21
    outcome = box.resend([(5, 30)])
    assert outcome.queued == 5
    assert outcome.not_held == [(5, 20), (26, 30)]
    assert sample(metrics, "edge_resend_not_held_total") == 21


def test_archive_keeps_within_its_byte_bound(tmp_path: Path) -> None:
    box, metrics = make(tmp_path, archive_max_bytes=20_000)
    for start in range(1, 1001, 100):
        box.put_many([msg(s, "y" * 100) for s in range(start, start + 100)])
        box.ack([r.id for r in box.fetch(0, 1000)])
    assert sample(metrics, "edge_outbox_archive_bytes") <= 20_000
    oldest = box.archive.oldest_seq()
    assert 800 < oldest < 1000, "the oldest go first"
    assert box.resend([(oldest, 1000)]).not_held == []


def full_after(pages: list[int]) -> Callable[[str], sqlite3.Connection]:
    """A connection whose file may not grow past pages[0] pages: SQLite's own "database or disk is full"."""

    def connect(path: str) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute(f"PRAGMA max_page_count={pages[0]}")
        return db

    return connect


def test_full_disk_holds_results_in_memory_and_writes_them_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pages = [30]
    connect = full_after(pages)
    metrics = AgentMetrics(CollectorRegistry())
    box = Outbox(OutboxConfig(path=tmp_path / "outbox.db"), metrics, connect=connect)
    seq = 0
    with caplog.at_level("WARNING"):
        for _ in range(40):
            box.put_many([msg(seq := seq + 1, "z" * 200) for _ in range(20)])
    assert not box.health()[0] and "held in memory" in box.health()[1]
    assert sample(metrics, "edge_outbox_dropped_total", reason="disk_full") == 0
    assert box.backlog == 800
    assert sum("cannot write" in r.getMessage() for r in caplog.records) == 1, "one line per minute at most"
    connect_limit = 100_000
    box._db.execute(f"PRAGMA max_page_count={connect_limit}")  # space again
    box._spill_retry_at = 0.0  # the retry interval has passed
    box.retry_held()
    assert box.health() == (True, "ok")
    assert len(box.fetch(0, 10_000)) == 800


def test_full_disk_drops_only_what_overflows_the_memory_buffer(tmp_path: Path) -> None:
    metrics = AgentMetrics(CollectorRegistry())
    config = OutboxConfig(path=tmp_path / "outbox.db", memory_buffer_bytes=10_000)
    box = Outbox(config, metrics, connect=full_after([20]))
    payloads = [msg(s, "w" * 160) for s in range(1, 2001)]
    for i in range(0, 2000, 50):
        box.put_many(payloads[i : i + 50])
    stored = len(box.fetch(0, 100_000))
    held = box.backlog - stored
    dropped = sample(metrics, "edge_outbox_dropped_total", reason="disk_full")
    assert dropped > 0
    assert stored + held + dropped == 2000, "every message is stored, held or counted as dropped"
    assert box.dropped_total() == dropped


def test_unwritable_outbox_is_a_clear_error(tmp_path: Path) -> None:
    from edge_agent.errors import OutboxError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutboxError, match="check the volume is writable"):
        Outbox(OutboxConfig(path=blocker / "outbox.db"), AgentMetrics(CollectorRegistry()))


def test_a_disk_full_of_archive_gives_up_old_replays_before_new_results(tmp_path: Path) -> None:
    metrics = AgentMetrics(CollectorRegistry())
    box = Outbox(OutboxConfig(path=tmp_path / "outbox.db"), metrics, connect=full_after([60]))
    seq = 0
    for _ in range(150):  # 3,000 messages of 330 bytes: four times what the 240 kB "disk" holds
        box.put_many([msg(seq := seq + 1, "a" * 300) for _ in range(20)])
        box.ack([r.id for r in box.fetch(0, 1000)])
        assert box.health() == (True, "ok")
    assert box.backlog == 0
    assert sample(metrics, "edge_outbox_dropped_total", reason="disk_full") == 0
    assert 0 < box.archive.rows < 3000
    assert box.archive.oldest_seq() > 1, "the oldest archived rows made room"


def test_results_arriving_while_the_disk_is_full_do_not_postpone_the_next_try(tmp_path: Path) -> None:
    import time as clock

    pages = [30]
    metrics = AgentMetrics(CollectorRegistry())
    box = Outbox(OutboxConfig(path=tmp_path / "outbox.db"), metrics, connect=full_after(pages))
    seq = 0
    while box.health()[0]:
        box.put_many([msg(seq := seq + 1, "z" * 300) for _ in range(20)])
    box._db.execute("PRAGMA max_page_count=100000")  # space again
    deadline = clock.monotonic() + 10
    while not box.health()[0] and clock.monotonic() < deadline:
        box.put_many([msg(seq := seq + 1, "z" * 300)])  # a steady stream, as from a pipeline
        clock.sleep(0.01)
    assert box.health() == (True, "ok")
    assert box.backlog == seq


def test_messages_still_held_in_memory_at_shutdown_are_counted_as_dropped(tmp_path: Path) -> None:
    metrics = AgentMetrics(CollectorRegistry())
    box = Outbox(OutboxConfig(path=tmp_path / "outbox.db"), metrics, connect=full_after([30]))
    seq = 0
    while box.health()[0]:
        box.put_many([msg(seq := seq + 1, "q" * 300) for _ in range(20)])
    held = box.backlog - len(box.fetch(0, 100_000))
    box.close()
    assert held > 0
    assert sample(metrics, "edge_outbox_dropped_total", reason="disk_full") == held


def test_replays_are_fetched_apart_from_the_backlog(tmp_path: Path) -> None:
    """Resend replays are written after the backlog; the forwarder reads them on their own, ahead of it."""
    box, _ = make(tmp_path)
    box.put_many([msg(s) for s in range(1, 11)])
    box.ack([r.id for r in box.fetch(0, 1000)])
    box.put_many([msg(s) for s in range(11, 511)])
    assert box.resend([(3, 5)]).queued == 3
    replays = box.fetch_replays(0, 10)
    assert [r.payload for r in replays] == [msg(s)[1] for s in (3, 4, 5)] and all(r.replay for r in replays)
    assert box.fetch_replays(replays[1].id, 10) == replays[2:]
    fresh = box.fetch(0, 1000, skip_replays=True)
    assert len(fresh) == 500 and not any(r.replay for r in fresh)
    assert len(box.fetch(0, 1000)) == 503, "the plain read still returns every row in written order"
