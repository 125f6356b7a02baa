"""MQTT consumer: the paho thread only queues deliveries; a writer thread commits them in batches, then acks."""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from roi_service.config import IngestSettings, MqttSettings
from roi_service.ingest.classify import Incoming
from roi_service.ingest.resender import Resender
from roi_service.ingest.writer import IngestWriter, StorageUnavailable, WriteReport

logger = logging.getLogger(__name__)
_STOP = object()


class MqttConsumer:
    """Subscribes to the device tree and stores every message exactly once.

    QoS 1 deliveries are acknowledged only after their batch is committed (paho manual_ack), so a
    crash between receive and commit makes the broker redeliver instead of losing the message.
    """

    def __init__(
        self,
        mqtt_settings: MqttSettings,
        writer: IngestWriter,
        ingest: IngestSettings | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.settings = mqtt_settings
        self.ingest = ingest or IngestSettings()
        self.writer = writer
        self.metrics = writer.metrics
        self.clock = clock
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.ingest.queue_size)
        self._thread = threading.Thread(target=self._drain, name="roi-ingest-writer", daemon=True)
        self._client = self._make_client()
        self.connected = threading.Event()
        self.subscriptions = 0  # SUBACKs received: one per (re)connection; tests wait on it after an outage
        self.on_batch: Callable[[WriteReport], None] | None = None
        self.resender: Resender | None = None
        if self.ingest.resend.enabled:
            self.resender = Resender(writer.engine, self.ingest.resend, self.publish, self.metrics)

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=s.client_id, clean_session=False, manual_ack=True)
        if s.username:
            client.username_pw_set(s.username, s.password.get_secret_value() if s.password else None)
        if s.ca_file is not None:
            client.tls_set(ca_certs=str(s.ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def start(self) -> None:
        self._thread.start()
        self._client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s)
        self._client.loop_start()
        if self.resender is not None:
            self.resender.start()
        logger.info(
            "ingest consuming %s from %s:%d", self.settings.subscription(), self.settings.host, self.settings.port
        )

    def publish(self, topic: str, payload: bytes) -> bool:
        """A command to a device (cmd/resend), QoS 1; False while the broker is not connected."""
        if not self.connected.is_set():
            return False
        return self._client.publish(topic, payload, qos=1).rc == mqtt.MQTT_ERR_SUCCESS

    def stop(self, timeout_s: float = 10.0) -> None:
        """Disconnect, then let the writer commit what is queued."""
        if self.resender is not None and self.resender.is_alive():
            self.resender.stop()
        self._client.disconnect()
        self._client.loop_stop()
        self._queue.put(_STOP)
        self._thread.join(timeout_s)

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            logger.warning("MQTT connection refused: %s", reason)
            return
        client.subscribe(self.settings.subscription(), qos=1)
        self.metrics.connected.set(1)
        self.connected.set()
        logger.info("MQTT connected; subscribed to %s", self.settings.subscription())

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, _mid: int, codes: Any, _props: Any) -> None:
        if any(code.is_failure for code in codes):
            logger.warning("subscription to %s refused: %s", self.settings.subscription(), codes)
            return
        self.subscriptions += 1

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self.metrics.connected.set(0)
        self.connected.clear()
        logger.warning("MQTT disconnected (%s); paho reconnects with backoff", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Blocking put is the back-pressure: a full queue stalls the socket, QoS 1 messages wait at the broker.
        incoming = Incoming(msg.topic, bytes(msg.payload), bool(msg.retain), self.clock(), msg.mid, msg.qos)
        self._queue.put(incoming)  # the depth gauge is set by the writer, once per batch

    def _next_batch(self) -> tuple[list[Incoming], bool]:
        try:
            first = self._queue.get(timeout=0.5)
        except queue.Empty:
            return [], False
        if first is _STOP:
            return [], True
        batch: list[Incoming] = [first]
        deadline = time.monotonic() + self.ingest.max_wait_s
        while len(batch) < self.ingest.batch_size:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _write_until_stored(self, batch: list[Incoming]) -> WriteReport:
        """Retry while the database is unreachable: the batch stays unacknowledged, so nothing is lost."""
        prepared = self.writer.prepare(batch)
        delay = 0.5
        while True:
            try:
                return self.writer.store(prepared)
            except StorageUnavailable as exc:
                logger.warning("database unavailable (%s); retrying %d messages in %.1fs", exc, len(batch), delay)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _drain(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._next_batch()
            if not batch:
                continue
            try:
                report = self._write_until_stored(batch)
            except Exception:
                # A bug must not stop ingest: count the batch, say so once, and keep consuming.
                logger.exception("ingest batch of %d failed unexpectedly; counted as rejected", len(batch))
                self.metrics.rejected.labels(reason="internal").inc(len(batch))
                report = None
            self.metrics.queue_depth.set(self._queue.qsize())
            for item in batch:
                if item.qos > 0:
                    self._client.ack(item.mid, item.qos)
            if self.on_batch is not None and report is not None:
                self.on_batch(report)
