"""The broker link above paho-mqtt 2: TLS, credentials, last will, retained status, backoff with jitter.

A fresh paho client is made for every connection attempt (connect_async + loop_start), so that
nothing paho keeps in memory outlives a connection: after a reconnect, everything unacknowledged
is sent again from the durable outbox, and nothing is sent twice by paho and by us. The last will
is built again for every connection, so each unclean disconnect carries its own message_id.

The link thread is supervised: an unexpected exception is logged once (one line, no traceback),
counted, and the link starts again with backoff. `problem()` names why nothing is delivered
(`auth refused`, `tls`, `unreachable`) for /healthz.
"""

from __future__ import annotations

import enum
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.backoff import Backoff
from edge_agent.config import MqttConfig
from edge_agent.errors import BrokerLinkError
from edge_agent.metrics import AgentMetrics
from edge_agent.tlsfiles import build_context

logger = logging.getLogger(__name__)

AckHandler = Callable[[int, ReasonCode | None], None]
MessageHandler = Callable[[str, bytes], None]
ConnectHandler = Callable[["MqttLink"], None]
Will = tuple[str, bytes] | Callable[[], tuple[str, bytes]]


CONNECT_TIMEOUT_S = 15.0


class LinkState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"
    STOPPED = "stopped"


AUTH_REFUSED = "auth refused"
TLS = "tls"
UNREACHABLE = "unreachable"
_REFUSALS = {
    "Not authorized": "the broker refused the credentials: check mqtt.username / mqtt.password (or *_FILE)",
    "Bad user name or password": "the broker refused the user name or password: check mqtt.username / password",
}


class MqttLink:
    """Keeps one broker connection alive. Callbacks run on paho's network thread: keep them short."""

    def __init__(
        self,
        config: MqttConfig,
        client_id: str,
        metrics: AgentMetrics,
        will: Will,
        password: str | None = None,
    ) -> None:
        self.config = config
        self.client_id = client_id
        self.metrics = metrics
        self.will = will
        self._password = password
        self.backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s)
        self.state = LinkState.DISCONNECTED
        self.last_error = ""
        self.category = ""  # AUTH_REFUSED, TLS or UNREACHABLE while the broker cannot be used
        self.last_delivery = time.monotonic()  # the last PUBACK (or the start): /healthz measures stalls from it
        self._last_logged = ""
        self._crash_logged = ""
        self._refused = False
        self.generation = 0
        self.max_packet_size: int | None = None
        self.receive_maximum: int | None = None  # MQTT 5 brokers announce how many QoS 1 messages they take at once
        self.client: paho.Client | None = None
        self.on_connected: list[ConnectHandler] = []
        self.on_ack: AckHandler | None = None
        self.subscriptions: dict[str, MessageHandler] = {}
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mqtt-link", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """The link thread never dies of an exception: log it once, count it, back off, start again."""
        while not self._stop.is_set():
            try:
                self._supervise()
                return
            except BrokerLinkError as exc:
                self._crashed(TLS, str(exc))
            except Exception as exc:  # noqa: BLE001 - the supervisor: any failure restarts the link
                self._crashed(UNREACHABLE, f"{type(exc).__name__}: {exc}")
            self._discard_client()
            self.state = LinkState.BACKOFF
            self._stop.wait(self.backoff.delay())
        self.state = LinkState.STOPPED

    def _crashed(self, category: str, text: str) -> None:
        self.category, self.last_error = category, text
        self.metrics.mqtt_link_errors.inc()
        self.connected.clear()
        if text != self._crash_logged:
            self._crash_logged = text
            logger.error("broker link %s:%d failed: %s; restarting it", self.config.host, self.config.port, text)

    def _supervise(self) -> None:
        """Connect, wait for the link to drop, back off with jitter, reconnect: until stopped."""
        while not self._stop.is_set():
            self._connect_once()
            deadline = time.monotonic() + CONNECT_TIMEOUT_S
            while not self._stop.is_set() and self.state in (LinkState.CONNECTING, LinkState.CONNECTED):
                if self.state is LinkState.CONNECTING and time.monotonic() > deadline:
                    self.last_error = f"no answer within {CONNECT_TIMEOUT_S:.0f}s"
                    break
                self._stop.wait(0.1)
            self._discard_client()
            if self._stop.is_set():
                break
            delay = self.backoff.delay()
            self.state = LinkState.BACKOFF
            self._diagnose()
            reason = self.last_error or "connection lost"
            log = logger.info if reason != self._last_logged else logger.debug  # once per kind of failure
            self._last_logged = reason
            log(
                "broker %s:%d unavailable (%s); reconnecting in %.1fs",
                self.config.host,
                self.config.port,
                reason,
                delay,
            )
            self._stop.wait(delay)
        self.state = LinkState.STOPPED

    def _diagnose(self) -> None:
        """Name why the last attempt failed; a TLS handshake failure looks like any other to paho, so probe it."""
        if self._refused:
            return
        self.category = UNREACHABLE
        if self.config.tls is None:
            return
        context = build_context(self.config.tls)
        try:
            with (
                socket.create_connection((self.config.host, self.config.port), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname=self.config.host),
            ):
                pass
        except ssl.SSLError as exc:
            self.category = TLS
            self.last_error = f"TLS handshake failed: {exc.reason or exc}; check mqtt.tls.ca_file and the broker name"
        except OSError:
            return

    def problem(self) -> str:
        """Why nothing can be delivered now ('' while connected)."""
        return "" if self.connected.is_set() else (self.category or UNREACHABLE)

    def _connect_once(self) -> None:
        self._refused = False
        client = self._make_client()
        self.state = LinkState.CONNECTING
        with self._lock:
            self.client = client
        try:
            client.connect_async(
                self.config.host,
                self.config.port,
                keepalive=self.config.keepalive_s,
                clean_start=True if self.config.protocol == "5" else paho.MQTT_CLEAN_START_FIRST_ONLY,
            )
            client.loop_start()
        except (OSError, ValueError) as exc:
            self.last_error = str(exc)
            self.state = LinkState.DISCONNECTED

    def _make_client(self) -> paho.Client:
        c = self.config
        protocol = paho.MQTTv5 if c.protocol == "5" else paho.MQTTv311
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=protocol,
            clean_session=None if protocol == paho.MQTTv5 else True,
            reconnect_on_failure=False,
        )
        # The forwarder keeps the window (c.max_inflight, within the broker's Receive Maximum). paho's own limit
        # would rescan every queued message on each PUBACK: measured at a sixth of the outbox's throughput.
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        if c.username:
            client.username_pw_set(c.username, self._password)
        if c.tls is not None:
            client.tls_set_context(build_context(c.tls))
            client.tls_insecure_set(c.tls.insecure)
        will_topic, will_payload = self.will() if callable(self.will) else self.will
        client.will_set(will_topic, will_payload, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _discard_client(self) -> None:
        with self._lock:
            client, self.client = self.client, None
        if client is not None:
            try:
                client.disconnect()
            except OSError:
                logger.debug("disconnect on a dead socket")
            client.loop_stop()

    def stop(self, last_words: tuple[str, bytes] | None = None, timeout_s: float = 2.0) -> None:
        """Publish `last_words` (the retained offline status) if connected, then disconnect cleanly."""
        if last_words is not None and self.connected.is_set():
            info = self.publish(last_words[0], last_words[1], retain=True)
            if info is not None:
                try:
                    info.wait_for_publish(timeout_s)
                except (RuntimeError, ValueError):
                    logger.debug("offline status not confirmed before shutdown")
        self._stop.set()
        self.connected.clear()
        if self._thread is not None:
            self._thread.join(timeout_s + 1)
        self._discard_client()
        self.metrics.mqtt_connected.set(0)

    # ------------------------------------------------------------ paho callbacks (network thread)

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        if reason.is_failure:
            text = str(reason)
            self.last_error = _REFUSALS.get(text, f"the broker refused the connection: {text}")
            self.category = AUTH_REFUSED if text in _REFUSALS else UNREACHABLE
            self._refused = True
            logger.error("%s (broker %s:%d)", self.last_error, self.config.host, self.config.port)
            self.state = LinkState.DISCONNECTED
            return
        self.max_packet_size = getattr(props, "MaximumPacketSize", None) if props is not None else None
        self.receive_maximum = getattr(props, "ReceiveMaximum", None) if props is not None else None
        self.generation += 1
        self.backoff.reset()
        self.last_error = self._last_logged = self._crash_logged = self.category = ""
        self.last_delivery = time.monotonic()
        self.state = LinkState.CONNECTED
        self.metrics.mqtt_connected.set(1)
        self.metrics.mqtt_reconnects.inc()
        logger.info("connected to broker %s:%d (MQTT %s)", self.config.host, self.config.port, self.config.protocol)
        for topic in self.subscriptions:
            client.subscribe(topic, qos=1)
        self.connected.set()
        for handler in self.on_connected:
            handler(self)

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        if client is self.client:
            self.last_error = "connection refused or unreachable"
            self.state = LinkState.DISCONNECTED

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        if client is not self.client:
            return
        self.connected.clear()
        self.metrics.mqtt_connected.set(0)
        if reason.is_failure and not self.last_error:
            self.last_error = f"disconnected: {reason}"
        if self.state is LinkState.CONNECTED:
            logger.warning("lost the broker %s:%d: %s", self.config.host, self.config.port, reason)
        self.state = LinkState.DISCONNECTED

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any) -> None:
        if client is self.client:
            self.last_delivery = time.monotonic()
            if self.on_ack is not None:
                self.on_ack(mid, reason)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        for pattern, handler in self.subscriptions.items():
            if paho.topic_matches_sub(pattern, message.topic):
                handler(message.topic, bytes(message.payload))

    # ------------------------------------------------------------ publishing

    def publish(self, topic: str, payload: bytes, retain: bool = False, qos: int = 1) -> paho.MQTTMessageInfo | None:
        """Publish on the current connection; None when there is none (the caller keeps the message)."""
        client = self.client
        if client is None or not self.connected.is_set():
            return None
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            return None
        return info

    def subscribe(self, pattern: str, handler: MessageHandler) -> None:
        self.subscriptions[pattern] = handler
        client = self.client
        if client is not None and self.connected.is_set():
            client.subscribe(pattern, qos=1)
