"""The resend loop: on the replica that holds the lease, scan for seq gaps and publish `cmd/resend`.

Rate-limited per gap (ResendSettings.interval_s), every open gap asked for once at start-up and again when
its device comes back online. Gap figures and the completeness KPI go to /metrics.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timezone

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from edge_agent.messages import CommandMessage, topic
from roi_service.config import ResendSettings
from roi_service.ingest import lease
from roi_service.ingest.completeness import completeness
from roi_service.ingest.gaps import Ask, SeqTracker
from roi_service.metrics import ServiceMetrics

logger = logging.getLogger(__name__)
LEASE = "resend"
Publish = Callable[[str, bytes], bool]
COMPLETENESS_EVERY = 5  # scans between two completeness figures (each reads a few aggregates)


def replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def resend_command(ask: Ask) -> tuple[str, bytes]:
    body = CommandMessage(request_id=f"roi-{uuid.uuid4().hex[:12]}", args={"ranges": [list(r) for r in ask.ranges]})
    return topic(ask.site, ask.device_id, "cmd/resend"), body.model_dump_json().encode()


class Resender(threading.Thread):
    def __init__(
        self,
        engine: Engine,
        settings: ResendSettings,
        publish: Publish,
        metrics: ServiceMetrics,
        holder: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        super().__init__(name="roi-resend", daemon=True)
        self.engine = engine
        self.settings = settings
        self.publish = publish
        self.metrics = metrics
        self.holder = holder or replica_id()
        self.clock = clock
        self.tracker = SeqTracker(settings)
        self.scans = 0
        self._stop_event = threading.Event()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop_event.set()
        self.join(timeout_s)
        try:
            with self.engine.begin() as conn:
                lease.release(conn, LEASE, self.holder)
        except SQLAlchemyError:
            logger.debug("lease not released (database unavailable); it expires on its own")

    def run(self) -> None:
        while not self._stop_event.wait(self.settings.scan_interval_s):
            try:
                self.step()
            except SQLAlchemyError as exc:
                logger.warning("seq gap scan failed (%s); trying again", type(exc).__name__)

    def step(self) -> list[Ask]:
        """One scan (when this replica holds the lease); returns the resends it published."""
        now = self.clock()
        with self.engine.begin() as conn:
            held = lease.hold(conn, LEASE, self.holder, now, self.settings.lease_s)
            self.metrics.resend_lease.set(1 if held else 0)
            if not held:
                self.tracker = SeqTracker(self.settings)  # should it take over later: ask for everything at once
                return []
            asks = self.tracker.scan(conn, now)
        self.scans += 1
        self._publish(asks)
        self._report(now)
        return asks

    def _publish(self, asks: list[Ask]) -> None:
        for ask in asks:
            name, body = resend_command(ask)
            if self.publish(name, body):
                count = sum(b - a + 1 for a, b in ask.ranges)
                self.metrics.resend_requests.inc()
                self.metrics.resend_seqs.inc(count)
                logger.info("asked %s/%s to resend %d seq(s) in %d range(s)", ask.site, ask.device_id, count,
                            len(ask.ranges))  # fmt: skip

    def _report(self, now: datetime) -> None:
        totals = self.tracker.totals
        self.metrics.seq_gaps.set(totals.gaps)
        self.metrics.seq_gap_seqs.set(totals.missing)
        self.metrics.seq_gap_oldest.set((now - totals.oldest).total_seconds() if totals.oldest else 0.0)
        if self.scans % COMPLETENESS_EVERY == 1:
            with self.engine.connect() as conn:
                self.metrics.completeness.set(completeness(conn).ratio)
