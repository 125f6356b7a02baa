"""`edge-agent bench --publish`: send the run's summary as a BenchResultMessage to the device's broker.

Uses the agent config's device identity and broker settings (TLS, credentials) and paho-mqtt 2
directly, QoS 1, waiting for the broker's PUBACK: the technician sees at once whether it arrived.
"""

from __future__ import annotations

import logging
import ssl
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent import messages as m
from edge_agent.config import AgentConfig, MqttConfig
from edge_agent.errors import ConfigError

logger = logging.getLogger(__name__)
TIMEOUT_S = 20.0


def build_message(result: dict[str, Any], site: str, device_id: str, seq: int | None = None) -> m.BenchResultMessage:
    """The summary without raw samples; seq from the clock, since the daemon's outbox owns the counter."""
    return m.BenchResultMessage(
        seq=seq if seq is not None else time.time_ns() // 1_000_000,
        site=site,
        device_id=device_id,
        captured_at=datetime.fromisoformat(result["created_at"]).astimezone(timezone.utc),
        fingerprint=result["fingerprint"],
        verdicts=result["verdicts"],
        summary=result["summary"],
    )


def _client(cfg: MqttConfig, client_id: str) -> paho.Client:
    protocol = paho.MQTTv5 if cfg.protocol == "5" else paho.MQTTv311
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password.get_secret_value() if cfg.password else None)
    if cfg.tls is not None:
        client.tls_set(
            ca_certs=str(cfg.tls.ca_file) if cfg.tls.ca_file else None,
            certfile=str(cfg.tls.cert_file) if cfg.tls.cert_file else None,
            keyfile=str(cfg.tls.key_file) if cfg.tls.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        client.tls_insecure_set(cfg.tls.insecure)
    return client


def send(config: AgentConfig, message: m.BenchResultMessage, timeout_s: float = TIMEOUT_S) -> str:
    """Publish with QoS 1 and wait for PUBACK; returns the topic. Raises ConnectionError with the reason."""
    if config.mqtt is None:
        raise ConnectionError("the config has no mqtt section: there is no broker to publish to")
    cfg = config.mqtt
    topic = m.topic(config.device.site, config.device.id, "bench")
    # Its own client id: the daemon may be connected with the configured one, and a broker drops duplicates.
    client = _client(cfg, f"edge-{config.device.site}-{config.device.id}-bench-{uuid.uuid4().hex[:6]}")
    try:
        client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionError(f"cannot reach the broker {cfg.host}:{cfg.port}: {exc}") from exc
    connected = _ConnectWatch(client)
    client.loop_start()
    try:
        connected.wait(cfg.host, cfg.port, timeout_s)
        info = client.publish(topic, message.model_dump_json().encode(), qos=1)
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            raise ConnectionError(f"the broker {cfg.host}:{cfg.port} did not acknowledge within {timeout_s:.0f} s "
                                  "(check the credentials and the ACL for this device's topics)")  # fmt: skip
    except (RuntimeError, ValueError) as exc:
        raise ConnectionError(f"publishing to {cfg.host}:{cfg.port} failed: {exc}") from exc
    finally:
        client.disconnect()
        client.loop_stop()
    return topic


class _ConnectWatch:
    """Waits for CONNACK so that refused credentials are reported as such, not as a missing PUBACK."""

    def __init__(self, client: paho.Client) -> None:
        self.done = threading.Event()
        self.reason = ""
        client.on_connect = self._on_connect

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.reason = str(reason) if reason.is_failure else ""
        self.done.set()

    def wait(self, host: str, port: int, timeout_s: float) -> None:
        if not self.done.wait(timeout_s):
            raise ConnectionError(f"the broker {host}:{port} did not answer the connection within {timeout_s:.0f} s")
        if self.reason:
            raise ConnectionError(f"the broker {host}:{port} refused the connection: {self.reason}")


def publish(result: dict[str, Any], config_path: Path) -> int:
    """CLI step: load the config, send, print where it went; user-facing errors are one line and exit 2."""
    from edge_agent.config_loader import load_config

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    message = build_message(result, config.device.site, config.device.id)
    try:
        topic = send(config, message)
    except ConnectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"published the benchmark summary to {topic} (message_id {message.message_id})", file=sys.stderr)
    return 0
