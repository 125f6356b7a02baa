"""Benchmark: roi_service ingest throughput (validate + batch insert ON CONFLICT DO NOTHING) into SQLite and PostgreSQL.

    python -m bench.roi_ingest                       # 50,000 messages into SQLite (temp file) and local PostgreSQL
    python -m bench.roi_ingest --mqtt                # also through a local Mosquitto and the MQTT consumer
    python -m bench.roi_ingest --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/roi_test --json out.json

Goal: >= 5,000 messages/s. Not a test: figures depend on the machine; report medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.exc import OperationalError

from roi_service.db.engine import make_engine, migrate
from roi_service.db.schema import messages
from roi_service.ingest.classify import Incoming, classify
from roi_service.ingest.writer import IngestWriter
from roi_service.metrics import ServiceMetrics
from roi_service.simulate import EPOCH, Device, payload

GOAL = 5000.0


def traffic(n: int, devices: int = 20) -> list[tuple[str, bytes]]:
    """Result messages from several devices, with an event every 50th and metrics every 500th message."""
    fleet = [
        Device("site1", f"dev{i:03d}", task=("defect", "shelf", "sensor_anomaly")[i % 3], seed=i)
        for i in range(devices)
    ]
    out: list[tuple[str, bytes]] = []
    for i in range(n):
        dev = fleet[i % devices]
        at = EPOCH + timedelta(milliseconds=20 * i)
        if i % 500 == 499:
            topic, msg = dev.metrics(at, p50=30, p95=60, p99=90, count=500, under=0.99)
        elif i % 50 == 49:
            topic, msg = dev.event(at, {"defect": "defect", "shelf": "low_stock"}.get(dev.task, "anomaly_start"))
        else:
            topic, msg = dev.result(at, flagged=i % 20 == 0)
        out.append((topic, payload(msg)))
    return out


@contextmanager
def sqlite_engine() -> Iterator[Engine]:
    folder = Path(tempfile.mkdtemp(prefix="roi-bench-"))
    engine = make_engine(f"sqlite:///{folder / 'roi.db'}")
    migrate(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def pg_engine(url: str) -> Iterator[Engine]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'create schema "{schema}"'))
    engine = create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'drop schema "{schema}" cascade'))
        admin.dispose()


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(messages)).scalar_one())


def run_writer(engine: Engine, items: list[tuple[str, bytes]], batch: int) -> dict[str, float]:
    """Fresh messages, then the same ones again (a full replay: every row a duplicate)."""
    writer = IngestWriter(engine, ServiceMetrics())
    now = datetime.now(timezone.utc)
    deliveries = [Incoming(t, p, False, now) for t, p in items]
    figures: dict[str, float] = {}
    for label in ("new", "replay"):
        start = time.perf_counter()
        for i in range(0, len(deliveries), batch):
            writer.write(deliveries[i : i + batch])
        figures[f"{label}_msgs_per_s"] = len(deliveries) / (time.perf_counter() - start)
    assert count(engine) == len(items), "each message must be stored exactly once"
    return figures


def run_classify(items: list[tuple[str, bytes]]) -> float:
    now = datetime.now(timezone.utc)
    start = time.perf_counter()
    for t, p in items:
        classify(Incoming(t, p, False, now))
    return len(items) / (time.perf_counter() - start)


def publish(host: str, port: int, items: list[tuple[str, bytes]]) -> None:
    """The device side, in its own process so it does not share the consumer's interpreter lock."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub")
    publisher.max_queued_messages_set(0)
    publisher.connect(host, port)
    publisher.loop_start()
    infos = [publisher.publish(t, p, qos=1) for t, p in items]
    for info in infos:
        info.wait_for_publish(60)
    publisher.loop_stop()
    publisher.disconnect()


def run_mqtt(engine: Engine, items: list[tuple[str, bytes]]) -> float:
    """Publisher process -> Mosquitto -> MqttConsumer -> database; messages/s from first publish to last commit."""
    import multiprocessing

    from roi_service.config import IngestSettings, MqttSettings
    from roi_service.ingest.consumer import MqttConsumer
    from tests.support.broker import start_mosquitto

    folder = Path(tempfile.mkdtemp(prefix="roi-bench-mqtt-"))
    broker = start_mosquitto(folder)
    metrics = ServiceMetrics()
    consumer = MqttConsumer(
        MqttSettings(host=broker.host, port=broker.port, client_id="roi-bench"),
        IngestWriter(engine, metrics),
        IngestSettings(),
    )
    try:
        consumer.start()
        while consumer.subscriptions < 1:
            time.sleep(0.01)
        process = multiprocessing.get_context("spawn").Process(target=publish, args=(broker.host, broker.port, items))
        process.start()
        while metrics.sample("roi_ingest_received_total") == 0:
            time.sleep(0.001)
        start = time.perf_counter()  # from the first delivery: process start-up is not ingest
        while metrics.sample("roi_ingest_received_total") < len(items):
            time.sleep(0.005)
        consumer.stop()
        elapsed = time.perf_counter() - start
        process.join(60)
        return len(items) / elapsed
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


def bench_database(name: str, factory: Any, items: list[tuple[str, bytes]], args: argparse.Namespace) -> dict[str, Any]:
    runs: list[dict[str, float]] = []
    for _ in range(args.repeat):
        with factory() as engine:
            runs.append(run_writer(engine, items, args.batch))
    result: dict[str, Any] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    if args.mqtt:
        with factory() as engine:
            result["mqtt_end_to_end_msgs_per_s"] = run_mqtt(engine, items)
    result["database"] = name
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/roi_test")
    parser.add_argument("--mqtt", action="store_true", help="also measure through Mosquitto and the consumer")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    items = traffic(args.messages)
    report: dict[str, Any] = {
        "messages": len(items),
        "batch": args.batch,
        "goal_msgs_per_s": GOAL,
        "classify_only_msgs_per_s": run_classify(items),
        "databases": [],
    }
    report["databases"].append(bench_database("sqlite", sqlite_engine, items, args))
    try:
        report["databases"].append(bench_database("postgresql", lambda: pg_engine(args.pg_url), items, args))
    except OperationalError as exc:
        print(f"PostgreSQL skipped ({type(exc).__name__}): run scripts/ensure_postgres.sh")
    print(
        f"{len(items)} messages, batches of {args.batch}; validation alone {report['classify_only_msgs_per_s']:,.0f}/s"
    )
    for row in report["databases"]:
        extra = f", via MQTT {row['mqtt_end_to_end_msgs_per_s']:,.0f}/s" if "mqtt_end_to_end_msgs_per_s" in row else ""
        verdict = "meets" if row["new_msgs_per_s"] >= GOAL else "misses"
        print(
            f"{row['database']:>10}: new {row['new_msgs_per_s']:,.0f}/s, replayed duplicates "
            f"{row['replay_msgs_per_s']:,.0f}/s{extra} ({verdict} the {GOAL:,.0f}/s goal)"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
