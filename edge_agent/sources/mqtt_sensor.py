"""Sensor samples published as JSON by a gateway over MQTT, cut into windows for the sensor job.

A message is one sample, ``{"ts": 1767600000.5, "vibration": 1.9, "temperature": 41.2, ...}``, or a
list of such objects. ``ts`` (epoch seconds or ISO-8601; the field is configurable) may be left out,
and the arrival time is used. A malformed message (not JSON, a missing or non-numeric field, an
out-of-order time) is skipped, counted in metrics.input_errors with a reason and logged, and never
stops the source. A lost broker raises SourceError so that the runner reconnects with backoff.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import threading
import time
from typing import Any

import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.config import MqttSensorSourceConfig
from edge_agent.errors import DataError, SourceClosed, SourceError
from edge_agent.sources.base import Source
from edge_agent.sources.windowing import Windower
from edge_agent.tasks.base import Item
from edge_agent.tasks.sensor.dataio import parse_time

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
Sample = tuple[float, np.ndarray]


class SampleParser:
    """JSON payload -> samples in channel order; raises DataError naming the field that is wrong."""

    def __init__(self, channels: tuple[str, ...], timestamp_field: str) -> None:
        self.channels = channels
        self.timestamp_field = timestamp_field

    def parse(self, payload: bytes | bytearray, received: float) -> list[Sample]:
        try:
            document = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"not JSON ({exc})") from exc
        records = document if isinstance(document, list) else [document]
        return [self._sample(record, received) for record in records]

    def _sample(self, record: Any, received: float) -> Sample:
        if not isinstance(record, dict):
            raise DataError(f"expected a JSON object per sample, got {type(record).__name__}")
        values = np.empty(len(self.channels), dtype=np.float32)
        for i, name in enumerate(self.channels):
            value = record.get(name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                problem = "missing" if value is None else f"not a finite number ({value!r:.40})"
                raise DataError(f"field {name!r} is {problem}")
            values[i] = value
        stamp = record.get(self.timestamp_field)
        if stamp is None:
            return received, values
        if isinstance(stamp, bool) or not isinstance(stamp, int | float | str):
            raise DataError(f"field {self.timestamp_field!r} must be epoch seconds or ISO-8601")
        return parse_time(str(stamp)), values


class MqttSensorSource(Source):
    """Subscribes to a gateway topic; samples go through a bounded queue into a Windower."""

    kind = "mqtt_sensor"
    keep_latest = False
    config: MqttSensorSourceConfig

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        if self.window is None:
            raise SourceClosed(f"pipeline {self.name}: an mqtt_sensor source needs a model with window params")
        self._windower = Windower(self.window, self.name)
        self._parser = SampleParser(self.window.channels, self.config.timestamp_field)
        self._queue: collections.deque[Sample] = collections.deque()
        self._cond = threading.Condition()
        self._client: paho.Client | None = None
        self._connected = threading.Event()
        self._lost: str | None = None
        self._last_ts = -math.inf
        self._errors = 0

    def describe(self) -> str:
        return f"mqtt {self.config.host}:{self.config.port} {self.config.topic}"

    def open(self) -> None:
        host = self.config.host
        if host is None:
            raise SourceClosed(f"pipeline {self.name}: mqtt_sensor source has no host; set source.host")
        self._connected.clear()
        self._lost = None
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-sensor-{self.name}-{id(self):x}")
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay_set(1, 1)  # the runner owns backoff; paho's own reconnect stays out of the way
        try:
            client.connect(host, self.config.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise SourceError(f"cannot connect to MQTT broker {host}:{self.config.port}: {exc}") from exc
        client.loop_start()
        self._client = client
        if not self._connected.wait(CONNECT_TIMEOUT_S) or self._lost:
            reason = self._lost or f"no CONNACK/SUBACK within {CONNECT_TIMEOUT_S:.0f} s"
            self.close()
            raise SourceError(f"MQTT broker {host}:{self.config.port} refused or did not answer: {reason}")
        self._windower.reset()

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        if reason.is_failure:
            self._lost = str(reason)
            self._connected.set()
        else:
            client.subscribe(self.config.topic, qos=1)

    def _on_subscribe(self, _c: paho.Client, _u: Any, _mid: int, reasons: Any, _p: Any = None) -> None:
        # Ready only once the broker has granted the subscription, so no early sample is lost.
        refused = [r for r in reasons if r.is_failure]
        if refused:
            self._lost = f"subscription to {self.config.topic!r} refused ({refused[0]})"
        self._connected.set()

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        self._lost = f"disconnected ({reason})"
        with self._cond:
            self._cond.notify_all()

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        try:
            samples = self._parser.parse(message.payload, time.time())
        except DataError as exc:
            self._bad(message.topic, exc, "malformed_json")
            return
        with self._cond:
            for sample in samples:
                if len(self._queue) >= self.config.queue_size:
                    self._bad(message.topic, DataError("sample queue full; the pipeline is behind"), "queue_full")
                    break
                self._queue.append(sample)
            self._cond.notify()

    def _bad(self, topic: str, exc: DataError, reason: str) -> None:
        self._errors += 1
        self.metrics.input_errors.labels(self.name, reason).inc()
        # A broken gateway sends the same mistake every second: log the first ten, then every 1000th.
        if self._errors <= 10 or self._errors % 1000 == 0:
            logger.warning("%s: sample on %s skipped: %s (%d bad so far)", self.name, topic, exc, self._errors)

    def read(self, timeout_s: float) -> Item | None:
        deadline = time.monotonic() + timeout_s
        while True:
            with self._cond:
                if not self._queue:
                    if self._lost is not None:
                        raise SourceError(f"MQTT broker {self.config.host}:{self.config.port} lost: {self._lost}")
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    self._cond.wait(remaining)
                    continue
                ts, values = self._queue.popleft()
            item = self._push(ts, values)
            if item is not None:
                return item

    def _push(self, ts: float, values: np.ndarray) -> Item | None:
        if ts <= self._last_ts:
            self._bad(self.config.topic, DataError(f"time {ts} is not after the previous sample"), "out_of_order")
            return None
        self._last_ts = ts
        return self._windower.push(ts, values)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
