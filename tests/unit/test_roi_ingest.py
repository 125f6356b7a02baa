"""roi_service ingest on a real SQLite file: exactly-once storage, counted rejects, device status."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, func, select

from roi_service.db.schema import devices, messages, snapshots, status_events
from roi_service.ingest.classify import Incoming
from roi_service.ingest.writer import IngestWriter
from roi_service.metrics import ServiceMetrics
from roi_service.simulate import EPOCH, Device, day_of_traffic, payload

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def writer(engine: Engine) -> IngestWriter:
    return IngestWriter(engine, ServiceMetrics())


def deliveries(pairs: list[tuple[str, bytes]], retained: bool = False) -> list[Incoming]:
    return [Incoming(t, p, retained, NOW) for t, p in pairs]


def count(engine: Engine, table: object = messages) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_replayed_and_duplicated_messages_are_stored_once(engine: Engine, writer: IngestWriter) -> None:
    traffic = day_of_traffic(Device("s1", "d1"), results=50)
    first = writer.write(deliveries(traffic))
    replay = [(t, p.replace(b'"replayed":false', b'"replayed":true')) for t, p in traffic[10:]]
    second = writer.write(deliveries(replay + replay[:5]))

    assert first.stored == len(traffic)
    assert second.stored == 0
    assert second.duplicates == len(replay) + 5
    assert count(engine) == len(traffic)
    assert writer.metrics.sample("roi_ingest_duplicates_total") == len(replay) + 5
    assert writer.metrics.sample("roi_ingest_stored_total", {"kind": "result"}) == 50


def test_malformed_and_unknown_payloads_are_counted_not_raised(engine: Engine, writer: IngestWriter) -> None:
    dev = Device("s1", "d1")
    good_topic, good = dev.result(EPOCH)
    other_topic, _ = Device("s1", "d2").result(EPOCH)
    bad = [
        (good_topic, b"not json"),
        (good_topic, b'{"kind": "result"}'),
        (good_topic, json.dumps({"kind": "weather", "seq": 1}).encode()),
        ("edge/v1/s1", payload(good)),
        ("somewhere/else/s1/d1/defect/result", payload(good)),
        (other_topic, payload(good)),  # right payload, another device's topic
        (dev.topic("sensor_anomaly/result"), payload(good)),  # defect payload on a sensor topic
        (good_topic, payload(good).replace(b'"seq":1', b'"seq":99999999999999999999999')),
        (dev.topic("defect/snapshot/abc"), b"GIF89a..."),
    ]
    report = writer.write(deliveries([*bad, (good_topic, payload(good))]))

    assert report.rejected == len(bad)
    assert report.stored == 1
    assert writer.metrics.total_rejected() == len(bad)
    assert writer.metrics.sample("roi_ingest_rejected_total", {"reason": "topic_mismatch"}) == 2
    assert writer.metrics.sample("roi_ingest_rejected_total", {"reason": "field_range"}) == 1
    assert count(engine) == 1


def test_snapshots_are_referenced_and_commands_ignored(engine: Engine, writer: IngestWriter) -> None:
    dev = Device("s1", "d1")
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 100 + b"\xff\xd9"
    pairs = [(dev.topic("defect/snapshot/item-7"), jpeg), (dev.topic("cmd/reload"), b"{}")]
    report = writer.write(deliveries(pairs + pairs))

    assert (report.snapshots, report.ignored, report.rejected) == (2, 2, 0)
    assert count(engine, snapshots) == 1
    with engine.connect() as conn:
        size = conn.execute(select(snapshots.c.size_bytes)).scalar_one()
    assert size == len(jpeg)
    assert writer.metrics.total_rejected() == 0


def test_status_and_last_will_track_device_state(engine: Engine, writer: IngestWriter) -> None:
    dev = Device("s1", "d1")
    online_topic, online = dev.status(EPOCH, "online")
    will_topic, will = dev.status(EPOCH, "offline")  # a last will is prepared at connect time
    writer.write([Incoming(online_topic, payload(online), False, NOW)])
    writer.write([Incoming(will_topic, payload(will), False, NOW + timedelta(minutes=30))])
    # A late redelivery of the old online status must not bring the device back.
    writer.write([Incoming(online_topic, payload(online, replayed=True), False, NOW + timedelta(minutes=31))])

    with engine.connect() as conn:
        state, since = conn.execute(select(devices.c.state, devices.c.state_since)).one()
        transitions = conn.execute(select(status_events.c.state).order_by(status_events.c.at)).scalars().all()
    assert state == "offline"
    assert since == NOW + timedelta(minutes=30)
    assert transitions == ["online", "offline"]


def test_stored_rows_keep_the_figures_kpis_need(engine: Engine, writer: IngestWriter) -> None:
    dev = Device("s1", "d1", task="defect")
    t, m = dev.result(EPOCH, total_ms=42.5, flagged=True)
    writer.write(deliveries([(t, payload(m, replayed=True))]))
    with engine.connect() as conn:
        row = conn.execute(select(messages)).mappings().one()
    assert (row["kind"], row["task"], row["pipeline"]) == ("result", "defect", "line1")
    assert (row["total_ms"], row["flag"], row["replayed"]) == (42.5, True, True)
    assert row["captured_at"] == EPOCH
