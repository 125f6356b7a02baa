"""The broker link is supervised and says why nothing is delivered: /healthz names auth refused, tls, unreachable
or a stale backlog; an exception in the link thread restarts it; each connection has its own last will."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from edge_agent.config import MqttConfig, OutboxConfig, TlsConfig
from edge_agent.forwarder import Forwarder, delivery_checks
from edge_agent.metrics import AgentMetrics
from edge_agent.mqtt import MqttLink
from edge_agent.outbox import Outbox
from tests.support.agent import Collector, forwarding
from tests.support.broker import Broker, free_port, start_mosquitto
from tests.support.tcpproxy import TcpProxy

STALLED_S = 0.5


def wait_for(check: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def parts(
    tmp_path: Path, config: MqttConfig, will: Any = ("edge/v1/lab/dev1/status", b"{}")
) -> tuple[Outbox, MqttLink]:
    metrics = AgentMetrics(CollectorRegistry())
    outbox = Outbox(OutboxConfig(path=tmp_path / "outbox.db"), metrics)
    return outbox, MqttLink(config, "dev1", metrics, will, password="wrong")


def mqtt_health(outbox: Outbox, link: MqttLink) -> tuple[bool, str]:
    return delivery_checks(outbox, link, STALLED_S)["mqtt"]


def config(port: int, **kw: Any) -> MqttConfig:
    return MqttConfig(host="127.0.0.1", port=port, reconnect_min_s=0.1, reconnect_max_s=0.5, **kw)


def test_an_unreachable_broker_is_named_on_healthz(tmp_path: Path) -> None:
    outbox, link = parts(tmp_path, config(free_port()))
    outbox.put("edge/v1/lab/dev1/x/result", b'{"seq":1}')
    with forwarding(link, Forwarder(outbox, link, 16)):
        assert wait_for(lambda: mqtt_health(outbox, link)[1].startswith("unreachable"))
        assert mqtt_health(outbox, link)[0] is False


def test_refused_credentials_are_named_auth_refused(tmp_path: Path) -> None:
    pwfile = tmp_path / "passwd"
    pwfile.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pwfile), "dev1", "right"], check=True)
    os.chmod(pwfile, 0o600)
    port = free_port()
    broker = start_mosquitto(
        tmp_path / "b", f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {pwfile}\n", port
    )
    outbox, link = parts(tmp_path, config(port, username="dev1"))
    try:
        with forwarding(link, Forwarder(outbox, link, 16)):
            assert wait_for(lambda: mqtt_health(outbox, link)[1].startswith("auth refused"))
            assert "wrong" not in mqtt_health(outbox, link)[1]
    finally:
        broker.stop()


def test_a_missing_ca_file_is_logged_once_and_named_tls(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    outbox, link = parts(tmp_path, config(free_port(), tls=TlsConfig(ca_file=tmp_path / "no-ca.pem")))
    with caplog.at_level("ERROR"), forwarding(link, Forwarder(outbox, link, 16)):
        assert wait_for(lambda: mqtt_health(outbox, link)[1].startswith("tls"))
        assert wait_for(lambda: link.metrics.registry.get_sample_value("edge_mqtt_link_errors_total") >= 3)
        assert link._thread is not None and link._thread.is_alive(), "the link keeps trying"
    lines = [r for r in caplog.records if "mqtt.tls.ca_file" in r.getMessage()]
    assert len(lines) == 1, "logged once"
    assert not any(r.exc_info for r in caplog.records), "no traceback"


def test_an_exception_in_the_link_thread_restarts_the_link(tmp_path: Path, mosquitto: Broker) -> None:
    outbox, link = parts(tmp_path, config(mosquitto.port))
    real = link._make_client
    calls = {"n": 0}

    def flaky() -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bug in the link")
        return real()

    link._make_client = flaky  # type: ignore[method-assign]
    with forwarding(link, Forwarder(outbox, link, 16)):
        assert wait_for(link.connected.is_set), "connected after the restart"
    assert link.metrics.registry.get_sample_value("edge_mqtt_link_errors_total") == 1


def test_every_connection_has_its_own_last_will(tmp_path: Path, mosquitto: Broker) -> None:
    proxy = TcpProxy(mosquitto.port).start()
    made: list[str] = []

    def will() -> tuple[str, bytes]:
        made.append(f"will-{len(made)}")
        return "edge/v1/lab/dev1/status", json.dumps({"message_id": made[-1]}).encode()

    watcher = Collector(mosquitto.host, mosquitto.port, "edge/v1/lab/dev1/status")
    outbox, link = parts(tmp_path, config(proxy.port), will=will)
    try:
        with forwarding(link, Forwarder(outbox, link, 16)):
            for cut in (1, 2):
                assert wait_for(link.connected.is_set)
                proxy.cut()
                assert wait_for(lambda n=cut: len(watcher.payloads()) >= n), "the broker published the will"
                proxy.restore()
        ids = [json.loads(p)["message_id"] for p in watcher.payloads()[:2]]
        assert len(set(ids)) == 2, f"two unclean disconnects, two message_ids: {ids}"
    finally:
        watcher.stop()
        proxy.stop()
