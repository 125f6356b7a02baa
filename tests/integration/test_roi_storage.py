"""roi_service storage against both databases: migrations, exactly-once batch inserts, status upserts."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Engine, func, inspect, select

from roi_service.db.schema import devices, messages
from roi_service.ingest.classify import Incoming
from roi_service.ingest.writer import IngestWriter
from roi_service.metrics import ServiceMetrics
from roi_service.simulate import Device, day_of_traffic

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


def test_migrations_create_every_table(engine: Engine) -> None:
    names = set(inspect(engine).get_table_names())
    assert {"messages", "snapshots", "status_events", "devices", "feedback", "use_cases", "readiness"} <= names
    assert "alembic_version" in names


def test_batches_store_each_message_once_on_both_databases(engine: Engine) -> None:
    writer = IngestWriter(engine, ServiceMetrics())
    traffic = day_of_traffic(Device("s1", "d1"), results=300) + day_of_traffic(Device("s1", "d2", seed=1))
    batch = [Incoming(t, p, False, NOW) for t, p in traffic]
    first = writer.write(batch)
    again = writer.write(batch[::-1] + batch[:3])
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(messages)).scalar_one()
        states = dict(conn.execute(select(devices.c.device_id, devices.c.state)).all())
    assert first.stored == len(traffic) == stored
    assert again.stored == 0 and again.duplicates == len(traffic) + 3
    assert states == {"d1": "online", "d2": "online"}


def test_aware_timestamps_round_trip_as_utc(engine: Engine) -> None:
    writer = IngestWriter(engine, ServiceMetrics())
    dev = Device("s1", "d1")
    t, m = dev.result(datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc))
    body = m.model_dump_json().replace("2026-01-05T10:00:00Z", "2026-01-05T11:00:00+01:00").encode()
    writer.write([Incoming(t, body, False, NOW)])
    with engine.connect() as conn:
        captured = conn.execute(select(messages.c.captured_at)).scalar_one()
    assert captured == datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)
