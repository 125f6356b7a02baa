"""The MQTT sensor source against a real Mosquitto: windows from JSON samples, garbage skipped, broker loss."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry

from edge_agent.backoff import Backoff
from edge_agent.config import MqttSensorSourceConfig
from edge_agent.errors import SourceError
from edge_agent.metrics import AgentMetrics
from edge_agent.sources.mqtt_sensor import MqttSensorSource
from edge_agent.sources.runner import Handover, SourceRunner
from edge_agent.sources.windowing import WindowSpec
from edge_agent.tasks.base import Item
from tests.support.broker import Broker

TOPIC = "plant/pump-7/samples"
WINDOW = WindowSpec(size=4, stride=2, channels=("vibration", "temperature"))


@pytest.fixture
def gateway(mosquitto: Broker) -> Iterator[paho.Client]:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="gateway")
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


def publish(client: paho.Client, payload: str | bytes) -> None:
    client.publish(TOPIC, payload, qos=1).wait_for_publish(5)


def sample(ts: float, vibration: float, temperature: float = 40.0) -> str:
    return json.dumps({"ts": ts, "vibration": vibration, "temperature": temperature})


def make_source(broker: Broker, metrics: AgentMetrics) -> MqttSensorSource:
    config = MqttSensorSourceConfig(kind="mqtt_sensor", topic="plant/+/samples", host=broker.host, port=broker.port)
    return MqttSensorSource("pump", config, WINDOW, metrics)


def read_items(source: MqttSensorSource, count: int, timeout_s: float = 10.0) -> list[Item]:
    items: list[Item] = []
    deadline = time.monotonic() + timeout_s
    while len(items) < count and time.monotonic() < deadline:
        item = source.read(timeout_s=0.2)
        if item is not None:
            items.append(item)
    return items


def wait_for(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_garbage_json_is_counted_logged_and_skipped(
    mosquitto: Broker, gateway: paho.Client, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    source = make_source(mosquitto, AgentMetrics(registry))
    source.open()
    try:
        with caplog.at_level(logging.WARNING, logger="edge_agent.sources.mqtt_sensor"):
            publish(gateway, sample(1000.0, 1.0))
            publish(gateway, b"{not json")
            publish(gateway, json.dumps({"ts": 1001.0, "vibration": "high", "temperature": 40.0}))
            publish(gateway, json.dumps({"ts": 1001.5, "temperature": 40.0}))
            batch = [json.loads(sample(1001.0 + k, 1.0 + k)) for k in range(5)]
            publish(gateway, json.dumps(batch))
            items = read_items(source, 2)
    finally:
        source.close()
    assert len(items) == 2
    assert items[0].data[:, 0].tolist() == [1.0, 1.0, 2.0, 3.0]
    assert items[1].meta["window_start"] == 1002.0 and items[1].meta["window_end"] == 1005.0
    errors = registry.get_sample_value("edge_input_errors_total", {"pipeline": "pump", "reason": "malformed_json"})
    assert errors == 3
    assert "not JSON" in caplog.text
    assert "field 'vibration' is not a finite number ('high')" in caplog.text
    assert "field 'vibration' is missing" in caplog.text


def test_samples_out_of_order_are_rejected(mosquitto: Broker, gateway: paho.Client) -> None:
    registry = CollectorRegistry()
    source = make_source(mosquitto, AgentMetrics(registry))
    source.open()
    try:
        for ts in (10.0, 11.0, 9.0, 12.0, 13.0):
            publish(gateway, sample(ts, ts))
        items = read_items(source, 1)
    finally:
        source.close()
    assert items[0].data[:, 0].tolist() == [10.0, 11.0, 12.0, 13.0]
    assert registry.get_sample_value("edge_input_errors_total", {"pipeline": "pump", "reason": "out_of_order"}) == 1


def test_lost_broker_raises_and_runner_reconnects(mosquitto: Broker, gateway: paho.Client) -> None:
    registry = CollectorRegistry()
    metrics = AgentMetrics(registry)
    source = make_source(mosquitto, metrics)
    handover = Handover(capacity=100, keep_latest=False)
    runner = SourceRunner(source, handover, metrics, Backoff(0.05, 0.3))
    runner.start()
    try:
        wait_for(lambda: registry.get_sample_value("edge_source_up", {"pipeline": "pump"}) == 1)
        mosquitto.stop()
        wait_for(lambda: registry.get_sample_value("edge_source_up", {"pipeline": "pump"}) == 0)
        mosquitto.start()
        wait_for(lambda: registry.get_sample_value("edge_source_up", {"pipeline": "pump"}) == 1)
        publisher = paho.Client(CallbackAPIVersion.VERSION2, client_id="gateway-2")
        publisher.connect(mosquitto.host, mosquitto.port)
        publisher.loop_start()
        try:
            for k in range(4):
                publish(publisher, sample(2000.0 + k, 1.0))
            wait_for(lambda: len(handover.take(10, 0.1)) > 0)
        finally:
            publisher.disconnect()
            publisher.loop_stop()
    finally:
        runner.stop()
        runner.join(5)
    assert (registry.get_sample_value("edge_source_reconnects_total", {"pipeline": "pump"}) or 0) >= 1


def test_read_after_disconnect_names_the_broker(mosquitto: Broker) -> None:
    source = make_source(mosquitto, AgentMetrics(CollectorRegistry()))
    source.open()
    mosquitto.stop()
    try:
        with pytest.raises(SourceError, match=rf"MQTT broker 127\.0\.0\.1:{mosquitto.port} lost"):
            for _ in range(50):
                source.read(timeout_s=0.2)
    finally:
        source.close()
