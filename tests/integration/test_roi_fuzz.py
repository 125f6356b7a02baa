"""10,000 fuzzed, malformed and implausible payloads through a real Mosquitto: all rejected and counted by reason,
nothing bogus stored, valid traffic stored."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, select

from roi_service.config import IngestSettings, MqttSettings
from roi_service.db.schema import messages
from roi_service.ingest.consumer import MqttConsumer
from roi_service.ingest.writer import IngestWriter
from roi_service.metrics import ServiceMetrics
from roi_service.simulate import EPOCH, Device, payload
from tests.support.broker import Broker

FUZZ = 10_000
VALID = 500


def _mutations(rng: random.Random) -> list[Callable[[dict[str, Any]], Any]]:
    """Each one makes a valid payload invalid by construction."""
    return [
        lambda d: {**d, "seq": -1},
        lambda d: {**d, "seq": rng.choice(["seven", None, 1.5, [], 2**70])},
        lambda d: {**d, "kind": rng.choice(["weather", "", None, 42])},
        lambda d: {**d, "schema_version": rng.choice([0, 2, "1"])},
        lambda d: {**d, "message_id": rng.choice(["not-a-uuid", "", 123])},
        lambda d: _without(d, rng.choice(["seq", "site", "captured_at", "timing", "data"])),
        lambda d: {**d, "unexpected": rng.random()},
        lambda d: {**d, "captured_at": rng.choice(["yesterday", "2026-13-45T99:00:00Z", 1e300])},
        lambda d: {**d, "pipeline": rng.choice(["a\u0000b", "x" * 65])},
        lambda d: {**d, "device_id": "someone-else"},
        lambda d: {**d, "data": {**d["data"], "task": "shelf"}},
        lambda d: {**d, "timing": {**d["timing"], "total_ms": "fast"}},
        lambda d: [d],
        lambda d: "just a string",
    ]


def _implausible(rng: random.Random) -> list[Callable[[dict[str, Any]], Any]]:
    """Schema-valid payloads that cannot be true: each must be refused by roi_service's plausibility checks."""
    return [
        lambda d: {**d, "timing": {**d["timing"], "total_ms": rng.choice([float("nan"), float("inf"), -float("inf")])}},
        lambda d: {**d, "timing": {**d["timing"], "inference_ms": -rng.uniform(0.1, 1e6)}},
        lambda d: {**d, "data": {**d["data"], "score": float("nan")}},
        lambda d: {
            **d,
            "captured_at": rng.choice(["0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]),
        },
        lambda d: {**d, "published_at": "2099-01-01T00:00:00Z"},
        lambda d: {**d, "data": {**d["data"], "item_id": "<script>alert(1)</script>"}},
        lambda d: {**d, "data": {**d["data"], "item_id": "x" * rng.randint(1025, 5000)}},
        lambda d: {**d, "model": "m\x07@1"},
    ]


def _without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


def _forged_status(dev: Device) -> tuple[str, bytes]:
    topic, status = dev.status(EPOCH, "online")
    body = json.loads(payload(status))
    return topic, json.dumps({**body, "agent_version": "<script>alert('x')</script>"}).encode()


def _huge(dev: Device, i: int) -> tuple[str, bytes]:
    if i % 2:
        return dev.topic(f"defect/snapshot/big{i}"), b"\xff\xd8\xff\xe0" + b"\x00" * (1024 * 1024 + 10) + b"\xff\xd9"
    topic, msg = dev.result(EPOCH)
    return topic, json.dumps({**json.loads(payload(msg)), "pipeline": "p" * (1024 * 1024)}).encode()


def fuzz_payloads(dev: Device, n: int, seed: int = 1234) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    mutations = _mutations(rng)
    implausible = _implausible(rng)
    result_topic = dev.topic("defect/result")
    out: list[tuple[str, bytes]] = []
    for i in range(n):
        topic, msg = dev.result(EPOCH)
        body = json.loads(payload(msg))
        choice = i % 8
        if i % 997 == 0:
            out.append(_huge(dev, i // 997))
            continue
        if choice == 0:
            out.append((result_topic, bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))))
        elif choice == 1:
            raw = payload(msg)
            out.append((result_topic, raw[: rng.randint(0, len(raw) - 1)]))
        elif choice == 2:
            out.append((result_topic, b"[" * rng.randint(1000, 5000)))
        elif choice == 3:
            out.append((rng.choice(["edge/v1/plant/cam1", "edge/v1/bad site/cam1/defect/result"]), payload(msg)))
        elif choice == 4:
            out.append((dev.topic(f"defect/snapshot/{i}"), b"GIF89a" + bytes(rng.getrandbits(8) for _ in range(20))))
        elif choice == 5:
            out.append((topic, json.dumps(rng.choice(mutations)(body), allow_nan=True).encode()))
        elif choice == 6:
            out.append((topic, json.dumps(rng.choice(implausible)(body), allow_nan=True).encode()))
        else:
            out.append(_forged_status(dev) if i % 3 == 0 else (Device("plant", "cam2").topic("defect/result"),
                                                                 payload(msg)))  # fmt: skip
    return out


def test_fuzzed_payloads_are_rejected_and_valid_traffic_survives(mosquitto: Broker, engine: Engine) -> None:
    dev = Device("plant", "cam1", task="defect", seed=5)
    valid = [dev.result(EPOCH) for _ in range(VALID)]
    bad = fuzz_payloads(Device("plant", "cam1", task="defect", seed=6), FUZZ)
    stream: list[tuple[str, bytes]] = []
    for i, item in enumerate(bad):
        stream.append(item)
        if i % (FUZZ // VALID) == 0:
            topic, msg = valid[i // (FUZZ // VALID)]
            stream.append((topic, payload(msg)))
    stream.append((dev.topic("defect/snapshot/real"), b"\xff\xd8\xff\xe0jpeg\xff\xd9"))
    assert len(stream) == FUZZ + VALID + 1

    metrics = ServiceMetrics()
    consumer = MqttConsumer(
        MqttSettings(host=mosquitto.host, port=mosquitto.port, client_id=f"roi-{uuid.uuid4().hex[:6]}"),
        IngestWriter(engine, metrics),
        IngestSettings(max_wait_s=0.02),
        clock=lambda: EPOCH + timedelta(minutes=5),  # the service clock the plausibility window is centred on
    )
    consumer.start()
    try:
        _wait(lambda: consumer.subscriptions == 1)
        publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fuzzer")
        publisher.max_queued_messages_set(0)
        publisher.connect(mosquitto.host, mosquitto.port)
        publisher.loop_start()
        infos = [publisher.publish(topic, body, qos=1) for topic, body in stream]
        for info in infos:
            info.wait_for_publish(30)
        _wait(
            lambda: metrics.sample("roi_ingest_received_total") >= len(stream),
            timeout_s=120,
            what=lambda: metrics.sample("roi_ingest_received_total"),
        )
        # After the storm the service still works: one more valid message is stored.
        topic, msg = dev.result(EPOCH)
        publisher.publish(topic, payload(msg), qos=1).wait_for_publish(10)
        _wait(lambda: _stored(engine) == VALID + 1, what=lambda: _stored(engine))
        publisher.loop_stop()
        publisher.disconnect()
        assert consumer._thread.is_alive()
    finally:
        consumer.stop()

    assert metrics.total_rejected() == FUZZ
    assert metrics.sample("roi_ingest_snapshots_total") == 1
    assert metrics.sample("roi_ingest_stored_total", {"kind": "result"}) == VALID + 1
    reasons = ("json", "schema", "topic", "topic_mismatch", "field_range", "snapshot", "size", "not_finite",
               "negative_latency", "timestamp", "string")  # fmt: skip
    for reason in reasons:
        assert metrics.sample("roi_ingest_rejected_total", {"reason": reason}) > 0, reason
    assert sum(metrics.rejected_by_reason().values()) == FUZZ, "the dashboard's breakdown adds up"
    with engine.connect() as conn:
        stored_ids = set(conn.execute(select(messages.c.message_id)).scalars())
        bogus = conn.execute(
            select(func.count())
            .select_from(messages)
            .where(messages.c.payload.contains("<script>") | (messages.c.device_id != "cam1"))
        ).scalar_one()
    assert stored_ids == {str(m.message_id) for _, m in valid} | {str(msg.message_id)}, "only the valid ones"
    assert bogus == 0


def _stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(messages)).scalar_one())


def _wait(check: Callable[[], bool], timeout_s: float = 30.0, what: Callable[[], object] = lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"condition not reached {what()}")
