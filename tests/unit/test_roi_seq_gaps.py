"""roi_service's seq gap tracking: gaps found from what is stored, asked for at the right times, closed by
replays or by a device's report that it no longer holds them; only the lease holder asks."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, select

from edge_agent.messages import CommandMessage
from roi_service.config import ResendSettings
from roi_service.db.schema import device_seq, seq_gaps
from roi_service.ingest.classify import Incoming
from roi_service.ingest.completeness import completeness
from roi_service.ingest.resender import Resender
from roi_service.ingest.writer import IngestWriter
from roi_service.metrics import ServiceMetrics
from roi_service.simulate import EPOCH, Device, payload
from tests.support.roi import sqlite_engine

SETTINGS = ResendSettings(grace_s=2, interval_s=10)


class Clock:
    def __init__(self) -> None:
        self.now = EPOCH

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def store(writer: IngestWriter, device: Device, seqs: list[int], clock: Clock) -> None:
    batch = []
    for seq in seqs:
        device.seq = seq - 1
        topic, message = device.result(clock.now)
        batch.append(Incoming(topic, payload(message), False, clock.now))
    writer.write(batch)


def resender(engine: Engine, clock: Clock, sent: list[tuple[str, bytes]], holder: str = "a") -> Resender:
    def publish(topic: str, body: bytes) -> bool:
        sent.append((topic, body))
        return True

    return Resender(engine, SETTINGS, publish, ServiceMetrics(), holder=holder, clock=clock)


def asked_ranges(sent: list[tuple[str, bytes]]) -> list[list[list[int]]]:
    return [CommandMessage.model_validate_json(body).args["ranges"] for _, body in sent]


def test_gaps_are_asked_for_after_the_grace_then_rate_limited(tmp_path: Path) -> None:
    clock, sent = Clock(), []
    with sqlite_engine(tmp_path) as engine:
        writer, dev = IngestWriter(engine, ServiceMetrics()), Device("s1", "d1")
        store(writer, dev, [*range(1, 11), *range(15, 21), 30], clock)
        r = resender(engine, clock, sent)
        r.step()
        assert sent == [], "a gap younger than the grace period may be reordering"
        clock.tick(3)
        r.step()
        assert asked_ranges(sent) == [[[11, 14], [21, 29]]]
        assert sent[0][0] == "edge/v1/s1/d1/cmd/resend"
        clock.tick(3)
        r.step()
        assert len(sent) == 1, "not asked again within the interval"
        store(writer, dev, [11, 12, 13, 14, 21, 22], clock)  # the replays arrive
        clock.tick(10)
        r.step()
        assert asked_ranges(sent)[-1] == [[23, 29]]
        with engine.connect() as conn:
            assert conn.execute(select(device_seq.c.high_water)).scalar_one() == 22


def test_a_device_coming_back_online_is_asked_at_once(tmp_path: Path) -> None:
    clock, sent = Clock(), []
    with sqlite_engine(tmp_path) as engine:
        writer, dev = IngestWriter(engine, ServiceMetrics()), Device("s1", "d1")
        store(writer, dev, [1, 2, 5], clock)
        r = resender(engine, clock, sent)
        r.step()
        clock.tick(3)
        r.step()
        clock.tick(1)
        topic, online = dev.status(clock.now, "online")
        writer.write([Incoming(topic, payload(online), False, clock.now)])
        clock.tick(1)
        r.step()
        assert asked_ranges(sent) == [[[3, 4]], [[3, 4]]]


def test_a_reported_loss_closes_the_gap_and_counts_against_completeness(tmp_path: Path) -> None:
    clock, sent = Clock(), []
    with sqlite_engine(tmp_path) as engine:
        metrics = ServiceMetrics()
        writer, dev = IngestWriter(engine, metrics), Device("s1", "d1")
        store(writer, dev, [*range(1, 51), 100], clock)
        r = resender(engine, clock, sent)
        r.step()
        clock.tick(3)
        r.step()
        reply = CommandMessage(args={"ok": True, "detail": "", "queued": 0, "not_held": [[51, 99]]})
        writer.write([Incoming(dev.topic("cmd/resend/reply"), reply.model_dump_json().encode(), False, clock.now)])
        clock.tick(1)
        r.step()
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(seq_gaps)).scalar_one() == 0
            kpi = completeness(conn)
        assert metrics.sample("roi_seq_lost_total") == 49
        assert (kpi.expected, kpi.lost, kpi.missing) == (100, 49, 0)
        assert abs(kpi.ratio - 0.51) < 1e-9
        assert kpi.last_loss_at == clock.now - timedelta(seconds=1)


def test_only_the_replica_holding_the_lease_asks(tmp_path: Path) -> None:
    clock, sent = Clock(), []
    with sqlite_engine(tmp_path) as engine:
        writer, dev = IngestWriter(engine, ServiceMetrics()), Device("s1", "d1")
        store(writer, dev, [1, 5], clock)
        first, second = resender(engine, clock, sent, "a"), resender(engine, clock, sent, "b")
        first.step()
        clock.tick(3)
        first.step()
        second.step()
        assert len(sent) == 1
        assert second.metrics.sample("roi_resend_lease_held") == 0
        clock.tick(SETTINGS.lease_s + 1)  # replica a died without giving the lease up
        store(writer, dev, [9], clock)
        second.step()
        assert asked_ranges(sent)[-1] == [[2, 4]], "the new holder asks for the open gap at once"
        clock.tick(3)
        second.step()
        assert asked_ranges(sent)[-1] == [[6, 8]], "and for the new one after its grace"
        assert second.metrics.sample("roi_resend_lease_held") == 1
