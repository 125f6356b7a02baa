"""End to end: an agent-like publisher, a real Mosquitto with an outage, replay, and the service storing once."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, select

from roi_service.calc.roi import UseCaseParams
from roi_service.config import IngestSettings, MqttSettings
from roi_service.db.schema import devices, messages, status_events
from roi_service.ingest.consumer import MqttConsumer
from roi_service.ingest.writer import IngestWriter
from roi_service.kpi import kpi_report
from roi_service.kpi_data import Scope
from roi_service.measure import evaluate
from roi_service.metrics import ServiceMetrics
from roi_service.simulate import Device, payload
from tests.support.broker import Broker
from tests.support.roi import any_engine

START = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=20)


def stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(messages)).scalar_one())


def wait_until(check: Callable[[], object], timeout_s: float = 30.0, what: Callable[[], object] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"condition not reached: {what() if what else ''}")


def device_client(broker: Broker, dev: Device) -> mqtt.Client:
    """Connect like the agent: a fresh last will per connection, then a retained online status."""
    now = datetime.now(timezone.utc)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cam1-{uuid.uuid4().hex[:6]}")
    will_topic, will = dev.status(now, "offline")
    client.will_set(will_topic, payload(will), qos=1, retain=True)
    client.connect(broker.host, broker.port)
    client.loop_start()
    online_topic, online = dev.status(now, "online")
    client.publish(online_topic, payload(online), qos=1, retain=True).wait_for_publish(10)
    return client


def count_kinds(engine: Engine) -> dict[str, int]:
    query = select(messages.c.kind, func.count()).group_by(messages.c.kind)
    with engine.connect() as conn:
        return {kind: int(n) for kind, n in conn.execute(query)}


def publish_all(client: mqtt.Client, items: list[tuple[str, bytes]]) -> None:
    infos = [client.publish(topic, body, qos=1) for topic, body in items]
    for info in infos:
        info.wait_for_publish(10)


def test_outage_and_replay_store_each_result_exactly_once(mosquitto: Broker, engine: Engine) -> None:
    dev = Device("plant", "cam1", task="defect", seed=7)
    results = [
        dev.result(START + timedelta(seconds=5 * i), total_ms=20.0 + i % 50, flagged=i % 25 == 0) for i in range(200)
    ]
    events = [dev.event(START + timedelta(seconds=5 * i), "defect") for i in range(0, 200, 25)]
    metrics = dev.metrics(
        START + timedelta(minutes=16), p50=40, p95=70, p99=95, count=200, under=0.99, backlog=0, replayed=150
    )
    writer = IngestWriter(engine, ServiceMetrics())
    settings = MqttSettings(
        host=mosquitto.host, port=mosquitto.port, client_id=f"roi-{uuid.uuid4().hex[:6]}", shared_group="roi"
    )
    consumer = MqttConsumer(settings, writer, IngestSettings(max_wait_s=0.02))
    consumer.start()
    try:
        wait_until(lambda: consumer.subscriptions == 1)
        agent = device_client(mosquitto, dev)
        publish_all(agent, [(t, payload(m)) for t, m in results[:100] + events[:4]])
        wait_until(lambda: count_kinds(engine).get("result") == 100)

        mosquitto.stop()  # outage: the agent keeps results in its outbox
        agent.loop_stop()
        agent.disconnect()
        mosquitto.start()
        wait_until(lambda: consumer.subscriptions == 2, timeout_s=40)  # paho reconnects with its backoff

        # Replay: the agent cannot know which in-flight messages arrived, so it resends from 50 on.
        agent = device_client(mosquitto, dev)
        backlog = results[50:] + events
        publish_all(agent, [(t, payload(m, replayed=True)) for t, m in backlog])
        publish_all(agent, [(metrics[0], payload(metrics[1]))])
        expected = {"result": 200, "event": 8, "metrics": 1}
        wait_until(lambda: count_kinds(engine).get("metrics") == 1, what=lambda: count_kinds(engine))

        # The device dies without saying goodbye: the broker publishes its last will.
        agent.loop_stop()
        sock = agent.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        wait_until(lambda: _state(engine) == "offline")
    finally:
        consumer.stop()

    end = datetime.now(timezone.utc)
    kinds = count_kinds(engine)
    assert {k: kinds[k] for k in expected} == expected
    assert kinds["status"] >= 3  # online, the will, online again, the final will (the broker may drop one)
    assert writer.metrics.sample("roi_ingest_duplicates_total") >= 50
    assert writer.metrics.total_rejected() == 0
    with engine.connect() as conn:
        replayed = conn.execute(select(func.count()).select_from(messages).where(messages.c.replayed)).scalar_one()
        result_ids = conn.execute(select(messages.c.message_id).where(messages.c.kind == "result")).scalars().all()
    assert sorted(result_ids) == sorted(str(m.message_id) for _, m in results)
    assert replayed == 100 + 4  # results 100..199 and events 4..7 arrived only as replays

    report = kpi_report(engine, Scope.parse("device", "plant/cam1"), end=end, period=timedelta(hours=1))
    assert report.value("latency_p95_ms") == 70
    # over the data's own time range (200 results 5 s apart), not the hour the report looks at
    assert report.value("throughput_per_min") == pytest.approx(199 / (199 * 5 / 60))
    uptime = report.value("uptime_pct")
    assert uptime is not None and 0 < uptime < 100  # the outage and the final will count as downtime
    with engine.connect() as conn:
        states = conn.execute(select(status_events.c.state).order_by(status_events.c.at)).scalars().all()
    assert states[0] == "online" and states[-1] == "offline" and "offline" in states[1:-1]
    use_case = UseCaseParams(name="cam1", task="defect", site="plant", escaped_defect_cost=100, hardware_cost=500)
    ranked = evaluate(engine, use_case, end=end, period=timedelta(hours=1))
    assert ranked.measured.catches == len(events) and ranked.measured.items == 200
    assert ranked.roi.savings_month > 0 and ranked.roi.payback_months is not None


def _state(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(devices.c.state)).scalar_one_or_none()


def test_replicas_split_a_shared_subscription_and_store_once(mosquitto: Broker, tmp_path: Path) -> None:
    """Two service replicas in the $share/roi group: each message reaches one of them and is stored once."""
    with any_engine("sqlite", tmp_path) as engine:
        writers = [IngestWriter(engine, ServiceMetrics()) for _ in range(2)]
        replicas = [
            MqttConsumer(
                MqttSettings(host=mosquitto.host, port=mosquitto.port, client_id=f"roi-{i}", shared_group="roi"),
                writer,
                IngestSettings(max_wait_s=0.02),
            )
            for i, writer in enumerate(writers)
        ]
        for replica in replicas:
            replica.start()
        try:
            wait_until(lambda: all(r.subscriptions == 1 for r in replicas))
            dev = Device("plant", "cam2", task="shelf", seed=11)
            agent = device_client(mosquitto, dev)
            results = [dev.result(START + timedelta(seconds=i)) for i in range(400)]
            publish_all(agent, [(t, payload(m)) for t, m in results])
            wait_until(lambda: count_kinds(engine).get("result") == 400, what=lambda: count_kinds(engine))
            agent.loop_stop()
            agent.disconnect()
        finally:
            for replica in replicas:
                replica.stop()
        shares = [w.metrics.sample("roi_ingest_stored_total", {"kind": "result"}) for w in writers]
        assert sum(shares) == 400 and all(share > 0 for share in shares)
