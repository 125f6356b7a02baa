"""Messages the broker will not take (too large, not authorised) are set aside and never block the queue."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from edge_agent.config import MqttConfig, OutboxConfig
from edge_agent.forwarder import Forwarder
from edge_agent.metrics import AgentMetrics
from edge_agent.mqtt import MqttLink
from edge_agent.outbox import Outbox
from tests.support.agent import Collector, forwarding, wait_drained
from tests.support.broker import free_port, start_mosquitto


def test_too_large_and_unauthorised_messages_are_set_aside(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    acl.write_text(
        "user dev1\ntopic readwrite edge/v1/lab/dev1/ok/#\ntopic read edge/v1/lab/dev1/status\n"
        "user watcher\ntopic read #\n"
    )
    pwfile = tmp_path / "passwd"
    pwfile.write_text("")
    for user in ("dev1", "watcher"):
        subprocess.run(["mosquitto_passwd", "-b", str(pwfile), user, "pw"], check=True)
    os.chmod(pwfile, 0o600)
    port = free_port()
    broker = start_mosquitto(
        tmp_path / "broker",
        f"listener {port} 127.0.0.1\nallow_anonymous false\n"
        f"password_file {pwfile}\nacl_file {acl}\nmax_packet_size 4096\n",
        port,
    )
    watcher = Collector("127.0.0.1", port, "edge/v1/#", "watcher", "pw")

    def received() -> list[int]:
        return [json.loads(payload)["n"] for payload in watcher.payloads()]

    metrics = AgentMetrics(CollectorRegistry())
    outbox = Outbox(OutboxConfig(path=tmp_path / "outbox.db"), metrics)
    config = MqttConfig(host="127.0.0.1", port=port, protocol="5", username="dev1")
    link = MqttLink(config, "dev1", metrics, ("edge/v1/lab/dev1/status", b'{"state":"offline"}'), password="pw")
    forwarder = Forwarder(outbox, link, 16)
    try:
        time.sleep(0.5)
        outbox.put_many(
            [
                ("edge/v1/lab/dev1/ok/result", b'{"n": 1}'),
                ("edge/v1/lab/dev1/ok/result", b'{"big": "' + b"x" * 10_000 + b'"}'),
                ("edge/v1/lab/dev1/forbidden/result", b'{"n": 2}'),
                ("edge/v1/lab/dev1/ok/result", b'{"n": 3}'),
            ]
        )
        with forwarding(link, forwarder):
            arrived = watcher.wait_until(lambda _: 3 in received(), 30)
            assert arrived, f"the message behind the rejected ones never arrived (received {received()})"
            wait_drained(outbox)
    finally:
        watcher.stop()
        broker.stop()
    # At least once: a connection the broker drops may bring a message again, never lose or reorder one.
    assert list(dict.fromkeys(received())) == [1, 3], received()
    assert outbox.backlog == 0, "nothing is stuck behind the rejected messages"
    assert metrics.registry.get_sample_value("edge_outbox_set_aside_total", {"reason": "too_large"}) == 1
    rejected = [s for s in metrics.registry.collect() if s.name == "edge_outbox_set_aside"]
    reasons = {sample.labels["reason"] for family in rejected for sample in family.samples}
    assert any(r.startswith("rejected") for r in reasons), reasons
    assert outbox.set_aside_count() == 2
    outbox.close()
