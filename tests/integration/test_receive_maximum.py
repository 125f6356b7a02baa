"""MQTT 5 brokers announce how many QoS 1 messages they accept at once; the forwarder keeps within it."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client import CollectorRegistry

from edge_agent.config import MqttConfig, OutboxConfig
from edge_agent.forwarder import Forwarder, effective_window
from edge_agent.metrics import AgentMetrics
from edge_agent.mqtt import MqttLink
from edge_agent.outbox import Outbox
from tests.support.agent import Collector, forwarding, wait_drained
from tests.support.broker import free_port, start_mosquitto


class CountingForwarder(Forwarder):
    """Records the most messages it ever had in flight."""

    peak = 0

    def _send_more(self) -> int:
        sent = super()._send_more()
        self.peak = max(self.peak, len(self._inflight))
        return sent


def test_backlog_is_sent_within_the_brokers_receive_maximum(tmp_path: Path) -> None:
    port = free_port()
    broker = start_mosquitto(
        tmp_path / "broker", f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 12\n", port
    )
    watcher = Collector("127.0.0.1", port, "edge/v1/#")

    def received() -> set[int]:
        return {int(payload) for payload in watcher.payloads()}

    metrics = AgentMetrics(CollectorRegistry())
    outbox = Outbox(OutboxConfig(path=tmp_path / "outbox.db"), metrics)
    outbox.put_many([("edge/v1/lab/dev1/sensor_anomaly/result", str(i).encode()) for i in range(600)])
    config = MqttConfig(host="127.0.0.1", port=port, protocol="5", max_inflight=256)
    link = MqttLink(config, "dev1", metrics, ("edge/v1/lab/dev1/status", b'{"state":"offline"}'))
    forwarder = CountingForwarder(outbox, link, config.max_inflight)
    try:
        with forwarding(link, forwarder):
            assert watcher.wait_until(lambda _: len(received()) == 600, 30), f"{len(received())} of 600 arrived"
            wait_drained(outbox)
    finally:
        watcher.stop()
        broker.stop()
    assert link.receive_maximum == 12, "Mosquitto announces its max_inflight_messages as Receive Maximum"
    assert 1 <= forwarder.peak <= 12 - 3, f"at most Receive Maximum less the link's reserve in flight: {forwarder.peak}"
    assert sorted(received()) == list(range(600)) and outbox.backlog == 0
    outbox.close()


def test_window_is_the_configured_one_within_a_receive_maximum() -> None:
    assert effective_window(256, None) == 256
    assert effective_window(256, 65535) == 256
    assert effective_window(256, 20) == 20 - 5
    assert effective_window(256, 100) == 100 - 8
    assert effective_window(64, 1000) == 64
    assert effective_window(256, 1) == 1


def test_resend_replays_go_out_ahead_of_a_backlog(tmp_path: Path) -> None:
    """roi_service asks again for 20 seqs while 3,000 results wait: the replays reach the broker among the first
    messages sent, not after the backlog (under a lasting overload they would never close the gap)."""
    port = free_port()
    broker = start_mosquitto(tmp_path / "broker", f"listener {port} 127.0.0.1\nallow_anonymous true\n", port)
    watcher = Collector("127.0.0.1", port, "edge/v1/#")
    metrics = AgentMetrics(CollectorRegistry())
    outbox = Outbox(OutboxConfig(path=tmp_path / "outbox.db"), metrics)
    topic = "edge/v1/lab/dev1/classify/result"
    outbox.put_many([(topic, f'{{"seq":{s}}}'.encode()) for s in range(1, 21)])
    outbox.ack([r.id for r in outbox.fetch(0, 100)])  # delivered once, then lost upstream
    outbox.put_many([(topic, f'{{"seq":{s}}}'.encode()) for s in range(21, 3021)])
    assert outbox.resend([(1, 20)]).queued == 20
    config = MqttConfig(host="127.0.0.1", port=port, max_inflight=64)
    link = MqttLink(config, "dev1", metrics, ("edge/v1/lab/dev1/status", b'{"state":"offline"}'))
    forwarder = Forwarder(outbox, link, config.max_inflight)
    try:
        with forwarding(link, forwarder):
            assert watcher.wait_until(lambda c: len(c.payloads()) >= 3020, 60), f"{len(watcher.payloads())} arrived"
            wait_drained(outbox)
    finally:
        watcher.stop()
        broker.stop()
    order = [json.loads(p)["seq"] for p in watcher.payloads()]
    assert sorted(order) == list(range(1, 3021))
    assert max(order.index(s) for s in range(1, 21)) < 64, "every replay within the first window sent"
    assert [json.loads(p).get("replayed") for p in watcher.payloads()][:20] == [True] * 20
    outbox.close()
