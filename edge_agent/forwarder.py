"""Sends the outbox to the broker, oldest first, and deletes each message only after its PUBACK."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from paho.mqtt.reasoncodes import ReasonCode

from edge_agent import messages as m
from edge_agent.errors import OutboxError
from edge_agent.mqtt import MqttLink
from edge_agent.outbox import Outbox, StoredMessage
from edge_agent.spillover import RateLimitedLog

logger = logging.getLogger(__name__)

ACK_FLUSH_S = 0.05
EXPIRE_EVERY_S = 30.0
RETRY_HELD_EVERY_S = 1.0  # how often results held in memory (disk full) are offered to the disk again
RESERVED_FOR_LINK = 8  # in-flight places left to the link's own QoS 1 messages under a Receive Maximum
POISON_DISCONNECTS = 3  # a message in flight across this many broken connections is set aside


def effective_window(configured: int, receive_maximum: int | None) -> int:
    """The configured window within an MQTT 5 broker's Receive Maximum, keeping a few places for the link's
    own messages (status, model, discovery, command replies), which do not pass through the outbox."""
    if not receive_maximum:
        return configured
    reserve = min(RESERVED_FOR_LINK, receive_maximum // 4)
    return max(1, min(configured, receive_maximum - reserve))


@dataclass
class _InFlight:
    message: StoredMessage
    generation: int


class Forwarder(threading.Thread):
    """Keeps up to `window` messages in flight on the current connection.

    A message stored before the current connection came up waited through an outage or a restart:
    it is sent with ``replayed: true``. On a reconnect everything unacknowledged is fetched again
    from SQLite, so an outage never loses what was in flight.
    """

    def __init__(self, outbox: Outbox, link: MqttLink, window: int) -> None:
        super().__init__(name="outbox-forwarder", daemon=True)
        self.outbox = outbox
        self.link = link
        self.window = window
        self._inflight: dict[int, _InFlight] = {}
        self._acks: deque[tuple[int, ReasonCode | None]] = deque()
        self._ack_arrived = threading.Event()
        self._awaiting_ack = False  # set only while the window is full, so most PUBACKs skip the Event's lock
        self._window = window  # of the current connection: within the broker's Receive Maximum
        self._stop_event = threading.Event()
        self._cursor = 0  # the last row sent of the outbox's own order (resend replays left out)
        self._replay_cursor = 0  # the last resend replay sent: those go ahead of the backlog
        self._generation = -1
        self._connected_at = 0.0
        self._disconnects_in_flight: dict[int, int] = {}
        self.replayed = 0
        self._ack_log = RateLimitedLog(logger)
        link.on_ack = self._on_ack

    def stop(self) -> None:
        self._stop_event.set()

    def _on_ack(self, mid: int, reason: ReasonCode | None) -> None:
        self._acks.append((mid, reason))  # deque.append is thread-safe; the forwarder thread does the work
        if self._awaiting_ack:
            self._ack_arrived.set()

    def run(self) -> None:
        last_expire = last_retry = 0.0
        last_ack_flush = time.monotonic()
        pending_ids: list[int] = []
        while not self._stop_event.is_set():
            pending_ids += self._drain_acks()  # acks of the old connection count before it is written off
            if self.link.generation != self._generation:
                pending_ids += self._drain_acks()  # PUBACKs that came in since the drain above still count
                self._new_connection()
            now = time.monotonic()
            if pending_ids and (now - last_ack_flush >= ACK_FLUSH_S or len(pending_ids) >= 1000):
                pending_ids = self._record_acks(pending_ids)
                last_ack_flush = now
            if now - last_retry > RETRY_HELD_EVERY_S:
                self.outbox.retry_held()
                last_retry = now
            if now - last_expire > EXPIRE_EVERY_S:
                self.outbox.expire()
                self.outbox.refresh_age_gauge()
                last_expire = now
            sent = self._send_more() if self.link.connected.is_set() else 0
            if not sent:
                if self._window - len(self._inflight) < self._refill_at:
                    self._wait_for_acks(0.01)
                else:
                    self.outbox.wait_for_data(0.01 if self._inflight else 0.1)
        self._record_acks(pending_ids + self._drain_acks())

    def _record_acks(self, ids: list[int]) -> list[int]:
        """Archive acknowledged rows; on a disk that refuses the write keep them for the next try (they are
        not resent meanwhile: the cursor is past them)."""
        try:
            self.outbox.ack(ids)
        except OutboxError as exc:
            self._ack_log.warning("%s; trying again", exc)
            return ids
        return []

    @property
    def _refill_at(self) -> int:
        """Free places that make a refill worth an SQLite read: a quarter of the window."""
        return max(1, self._window // 4)

    def _wait_for_acks(self, timeout_s: float) -> None:
        """The window is full: sleep until a PUBACK makes room (one appended before the flag is seen in the deque)."""
        self._awaiting_ack = True
        if not self._acks:
            self._ack_arrived.wait(timeout_s)
        self._awaiting_ack = False
        self._ack_arrived.clear()

    def _new_connection(self) -> None:
        """A new connection (or none): what was in flight on the old one is sent again from the outbox."""
        if self._inflight:
            # Brokers handle a connection's messages in order: the oldest unacknowledged one is the suspect.
            row_id = min(entry.message.id for entry in self._inflight.values())
            self._disconnects_in_flight[row_id] = self._disconnects_in_flight.get(row_id, 0) + 1
        self._inflight.clear()
        self._acks.clear()
        self._cursor = self._replay_cursor = 0
        self._generation = self.link.generation
        self._window = effective_window(self.window, self.link.receive_maximum)
        self._connected_at = time.time()

    def _drain_acks(self) -> list[int]:
        done: list[int] = []
        while self._acks:
            mid, reason = self._acks.popleft()
            entry = self._inflight.pop(mid, None)
            if entry is None or entry.generation != self._generation:
                continue
            if reason is not None and reason.is_failure:
                self.outbox.set_aside(entry.message, f"rejected: {reason}")
                continue
            self._disconnects_in_flight.pop(entry.message.id, None)
            done.append(entry.message.id)
        return done

    def _send_more(self) -> int:
        if self.link.generation != self._generation:
            return 0  # a connection came up since the loop looked: take its settings (window, replay) first
        room = self._window - len(self._inflight)
        if room < self._refill_at:
            return 0  # refill in chunks: one SQLite read per quarter window, not one per PUBACK
        batch = self.outbox.fetch_replays(self._replay_cursor, room)
        if len(batch) < room:
            batch += self.outbox.fetch(self._cursor, room - len(batch), skip_replays=True)
        sent = 0
        stamp = m.SendStamp(m.utcnow())
        limit = min(self.link.max_packet_size or self.outbox.config.max_payload_bytes,
                    self.outbox.config.max_payload_bytes)  # fmt: skip
        for message in batch:
            self._move_cursor(message, message.id)
            if self._is_poison(message, limit):
                continue
            replayed = message.replay or message.created < self._connected_at
            payload = stamp.apply(message.payload, replayed)
            info = self.link.publish(message.topic, payload)
            if info is None:  # the connection dropped under us: refetch after the reconnect
                self._move_cursor(message, message.id - 1)
                break
            self._inflight[info.mid] = _InFlight(message, self._generation)
            if replayed:
                self.replayed += 1
                self.outbox.metrics.outbox_replayed.inc()
            sent += 1
        return sent

    def _move_cursor(self, message: StoredMessage, to: int) -> None:
        if message.replay:
            self._replay_cursor = to
        else:
            self._cursor = to

    def _is_poison(self, message: StoredMessage, limit: int) -> bool:
        if len(message.payload) + len(message.topic) + 64 > limit:
            self.outbox.set_aside(message, "too_large")
            return True
        if self._disconnects_in_flight and self._disconnects_in_flight.get(message.id, 0) >= POISON_DISCONNECTS:
            self._disconnects_in_flight.pop(message.id, None)
            self.outbox.set_aside(message, "broker_drops_connection")
            return True
        return False


def delivery_checks(outbox: Outbox, link: MqttLink | None, stalled_after_s: float) -> dict[str, tuple[bool, str]]:
    """/healthz entries for the outbox (can it write?) and the broker link (has anything been delivered lately?)."""
    checks = {"outbox": outbox.health()}
    if link is None:
        return checks
    idle = time.monotonic() - link.last_delivery
    stalled = idle > stalled_after_s and (outbox.backlog > 0 or not link.connected.is_set())
    if not stalled:
        checks["mqtt"] = (True, "ok")
        return checks
    problem = link.problem() or f"backlog older than {stalled_after_s:g} s"
    detail = f": {link.last_error}" if link.last_error and not link.connected.is_set() else ""
    checks["mqtt"] = (False, f"{problem}{detail} (nothing delivered for {idle:.0f} s)")
    return checks
