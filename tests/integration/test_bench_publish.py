"""`edge-agent bench --publish`: the summary reaches a real Mosquitto on the device's bench topic, and roi_service."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine

from bench.publish import publish
from edge_agent import messages as m
from roi_service.config import IngestSettings, MqttSettings
from roi_service.ingest.consumer import MqttConsumer
from roi_service.ingest.writer import IngestWriter
from roi_service.kpi import kpi_report
from roi_service.kpi_data import Scope
from roi_service.metrics import ServiceMetrics
from tests.support.broker import Broker, free_port

ROOT = Path(__file__).resolve().parents[2]
RESULT: dict[str, Any] = {
    "created_at": "2026-11-22T21:00:00+00:00",
    "fingerprint": {"cpu_model": "test cpu", "cores": 2},
    "verdicts": {"shelf-detector": True},
    "summary": [{"model": "shelf-detector", "variant": "onnx-int8", "threads": 1, "e2e_p95_ms": 21.5}],
}


def _config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(
        f"""
device: {{site: shop-1, id: pi-01}}
mqtt: {{host: 127.0.0.1, port: {port}}}
pipelines:
  - name: cam
    source: {{kind: folder, path: {tmp_path}}}
    model: {{path: {ROOT / "tests" / "data" / "tiny-classifier"}}}
    task: {{kind: classify}}
"""
    )
    return path


def test_publish_sends_a_bench_result_message_with_qos1(mosquitto: Broker, tmp_path: Path) -> None:
    got: list[paho.MQTTMessage] = []
    arrived = threading.Event()
    sub = paho.Client(CallbackAPIVersion.VERSION2)

    def on_message(client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        got.append(msg)
        arrived.set()

    sub.on_message = on_message
    sub.connect("127.0.0.1", mosquitto.port)
    sub.subscribe("edge/v1/+/+/bench", qos=1)
    sub.loop_start()
    try:
        assert publish(RESULT, _config(tmp_path, mosquitto.port)) == 0
        assert arrived.wait(10)
    finally:
        sub.loop_stop()
        sub.disconnect()
    msg = got[0]
    assert msg.topic == "edge/v1/shop-1/pi-01/bench"
    assert msg.qos == 1
    parsed = m.MESSAGE_ADAPTER.validate_json(msg.payload)
    assert isinstance(parsed, m.BenchResultMessage)
    assert parsed.site == "shop-1" and parsed.device_id == "pi-01"
    assert parsed.verdicts == {"shelf-detector": True}


def test_unreachable_broker_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert publish(RESULT, _config(tmp_path, free_port())) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot reach the broker 127.0.0.1:") and "\n" not in err


def test_roi_service_shows_the_published_benchmark_as_the_device_kpi(
    mosquitto: Broker, engine: Engine, tmp_path: Path
) -> None:
    metrics = ServiceMetrics()
    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port, client_id=f"roi-{uuid.uuid4().hex[:6]}")
    consumer = MqttConsumer(settings, IngestWriter(engine, metrics), IngestSettings(max_wait_s=0.02))
    consumer.start()
    try:
        deadline = time.monotonic() + 15
        while consumer.subscriptions < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert publish(RESULT, _config(tmp_path, mosquitto.port)) == 0
        while metrics.sample("roi_ingest_stored_total", {"kind": "bench"}) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        consumer.stop()
    measured = datetime.fromisoformat(RESULT["created_at"])
    scope = Scope.parse("device", "shop-1/pi-01")
    (bench,) = kpi_report(engine, scope, end=measured + timedelta(minutes=5), period=timedelta(hours=1)).benchmarks
    assert (bench.status, bench.measured_at, bench.cpu_model) == ("pass", measured, "test cpu")
    assert (bench.worst_int8_p95_ms, bench.worst_case) == (21.5, "shelf-detector onnx-int8@1t")
    assert [(model.model, model.passed) for model in bench.models] == [("shelf-detector", True)]
