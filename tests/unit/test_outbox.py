"""The SQLite outbox: durable order, bounds that drop oldest and count it, sequence numbers that only grow."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from edge_agent.config import OutboxConfig
from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import SEQ_BLOCK, Outbox


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


def test_sequence_only_grows_across_restarts(tmp_path: Path) -> None:
    box, _ = make(tmp_path)
    first = [box.next_seq() for _ in range(3)]
    box.close()
    again, _ = make(tmp_path)
    later = again.next_seq()
    assert first == sorted(first) and len(set(first)) == 3
    assert later > first[-1]
    assert later <= SEQ_BLOCK + 1


def test_sequence_crosses_reserved_blocks(tmp_path: Path) -> None:
    box, _ = make(tmp_path)
    values = [box.next_seq() for _ in range(SEQ_BLOCK + 5)]
    box.close()
    again, _ = make(tmp_path)
    assert again.next_seq() > values[-1]


def test_unwritable_outbox_is_a_clear_error(tmp_path: Path) -> None:
    from edge_agent.errors import OutboxError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutboxError, match="check the volume is writable"):
        Outbox(OutboxConfig(path=blocker / "outbox.db"), AgentMetrics(CollectorRegistry()))
