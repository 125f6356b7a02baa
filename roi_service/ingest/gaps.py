"""Seq gap tracking: each device's contiguous high-water mark and the gaps above it, from what is stored.

The broker's PUBACK to a device does not mean roi_service has the message (a full subscriber queue, a
broker restarted without sessions). The tracker scans the stored seqs of results, events and metrics (the
kinds that pass through the device's outbox), keeps the gaps in `seq_gaps`, and says which are due for a
`cmd/resend`: from seq 1 for a device seen for the first time (what it sent before roi_service subscribed),
older than the grace period (pipelines commit slightly out of order), not asked for within
the interval, or at once after the service starts or the device comes back online. Ranges a device
reported it no longer holds (`seq_losses`) close their gaps. It runs on the replica holding the lease.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, and_, delete, select

from edge_agent.seqranges import SeqRange, subtract, to_ranges
from roi_service.config import ResendSettings
from roi_service.db.engine import insert_for
from roi_service.db.schema import device_seq, devices, messages, seq_gaps, seq_losses

TRACKED_KINDS = ("result", "event", "metrics")
SCAN_CHUNK = 200_000


@dataclass(frozen=True)
class Gap:
    first: int
    last: int
    opened_at: datetime
    last_asked_at: datetime | None = None
    asks: int = 0

    @property
    def size(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class Ask:
    """One cmd/resend to publish."""

    site: str
    device_id: str
    ranges: list[SeqRange]


@dataclass
class ScanTotals:
    gaps: int = 0
    missing: int = 0
    oldest: datetime | None = None

    def add(self, gaps: list[Gap]) -> None:
        self.gaps += len(gaps)
        self.missing += sum(g.size for g in gaps)
        for gap in gaps:
            self.oldest = gap.opened_at if self.oldest is None else min(self.oldest, gap.opened_at)


def _seq_filter(site: str, device: str) -> list[ColumnElement[bool]]:
    return [messages.c.site == site, messages.c.device_id == device, messages.c.kind.in_(TRACKED_KINDS)]


class SeqTracker:
    """Scans stored seqs per device; `scan()` returns the resends that are due (and marks them asked)."""

    def __init__(self, settings: ResendSettings) -> None:
        self.settings = settings
        self._fresh = True  # the first scan after start asks for every open gap at once
        self.totals = ScanTotals()

    def scan(self, conn: Connection, now: datetime) -> list[Ask]:
        asks: list[Ask] = []
        self.totals = ScanTotals()
        rows = conn.execute(select(devices.c.site, devices.c.device_id, devices.c.state, devices.c.state_since))
        for site, device, state, since in rows.all():
            gaps = self._scan_device(conn, site, device, now)
            online_since = since if state == "online" else None
            due, gaps = self._due(gaps, now, online_since)
            if due:
                asks.append(Ask(site, device, due))
                self._save_gaps(conn, site, device, gaps)
            self.totals.add(gaps)
        self._fresh = False
        return asks

    def _scan_device(self, conn: Connection, site: str, device: str, now: datetime) -> list[Gap]:
        state = conn.execute(
            select(device_seq.c.high_water, device_seq.c.max_seen).where(
                device_seq.c.site == site, device_seq.c.device_id == device
            )
        ).first()
        cursor = int(state[1]) if state else None
        new = self._new_seqs(conn, site, device, cursor)
        if state is None and not new:
            return []
        max_seen = cursor if cursor is not None else 0  # a new device: everything from seq 1 is asked for
        gaps = self._refill(conn, site, device, self._load_gaps(conn, site, device))
        gaps += [Gap(a, b, now) for a, b in _holes(max_seen, new)]
        max_seen = max(max_seen, new[-1]) if new else max_seen
        gaps = self._without_losses(conn, site, device, gaps)
        high_water = gaps[0].first - 1 if gaps else max_seen
        self._save_state(conn, site, device, high_water, max_seen, now)
        self._save_gaps(conn, site, device, gaps)
        return gaps

    def _new_seqs(self, conn: Connection, site: str, device: str, cursor: int | None) -> list[int]:
        where = _seq_filter(site, device)
        if cursor is not None:
            where.append(messages.c.seq > cursor)
        query = select(messages.c.seq).where(and_(*where)).distinct().order_by(messages.c.seq).limit(SCAN_CHUNK)
        return [int(s) for s in conn.execute(query).scalars()]

    def _load_gaps(self, conn: Connection, site: str, device: str) -> list[Gap]:
        c = seq_gaps.c
        rows = conn.execute(
            select(c.first_seq, c.last_seq, c.opened_at, c.last_asked_at, c.asks)
            .where(c.site == site, c.device_id == device)
            .order_by(c.first_seq)
        )
        return [Gap(int(r[0]), int(r[1]), r[2], r[3], int(r[4])) for r in rows]

    def _refill(self, conn: Connection, site: str, device: str, gaps: list[Gap]) -> list[Gap]:
        """What is still missing of each gap (replays and late commits fill them); parts keep the gap's dates."""
        out: list[Gap] = []
        for gap in gaps:
            where = [*_seq_filter(site, device), messages.c.seq.between(gap.first, gap.last)]
            held = conn.execute(select(messages.c.seq).where(and_(*where)).distinct()).scalars()
            for a, b in subtract((gap.first, gap.last), to_ranges(int(s) for s in held)):
                out.append(replace(gap, first=a, last=b))
        return out

    def _without_losses(self, conn: Connection, site: str, device: str, gaps: list[Gap]) -> list[Gap]:
        if not gaps:
            return gaps
        c = seq_losses.c
        lost = [
            (int(a), int(b))
            for a, b in conn.execute(
                select(c.first_seq, c.last_seq).where(
                    c.site == site, c.device_id == device, c.last_seq >= gaps[0].first
                )
            )
        ]
        if not lost:
            return gaps
        return [replace(g, first=a, last=b) for g in gaps for a, b in subtract((g.first, g.last), lost)]

    def _due(self, gaps: list[Gap], now: datetime, online_since: datetime | None) -> tuple[list[SeqRange], list[Gap]]:
        """Ranges to ask for now, within the per-ask budget; the gaps with their ask dates updated."""
        budget = self.settings.max_seqs
        due: list[SeqRange] = []
        updated: list[Gap] = []
        for gap in gaps:
            if budget > 0 and self._is_due(gap, now, online_since):
                last = min(gap.last, gap.first + budget - 1)
                due.append((gap.first, last))
                budget -= last - gap.first + 1
                updated.append(replace(gap, last_asked_at=now, asks=gap.asks + 1))
            else:
                updated.append(gap)
        return due, updated

    def _is_due(self, gap: Gap, now: datetime, online_since: datetime | None) -> bool:
        if (now - gap.opened_at).total_seconds() < self.settings.grace_s:
            return False
        asked = gap.last_asked_at
        return (
            self._fresh
            or asked is None
            or (now - asked).total_seconds() >= self.settings.interval_s
            or (online_since is not None and online_since > asked)
        )

    def _save_state(
        self, conn: Connection, site: str, device: str, high_water: int, max_seen: int, now: datetime
    ) -> None:
        stmt = insert_for(conn.engine)(device_seq).values(
            site=site, device_id=device, high_water=high_water, max_seen=max_seen, updated_at=now
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["site", "device_id"],
                set_={k: stmt.excluded[k] for k in ("high_water", "max_seen", "updated_at")},
            )
        )

    def _save_gaps(self, conn: Connection, site: str, device: str, gaps: list[Gap]) -> None:
        conn.execute(delete(seq_gaps).where(seq_gaps.c.site == site, seq_gaps.c.device_id == device))
        if gaps:
            conn.execute(
                seq_gaps.insert(),
                [
                    {
                        "site": site,
                        "device_id": device,
                        "first_seq": g.first,
                        "last_seq": g.last,
                        "opened_at": g.opened_at,
                        "last_asked_at": g.last_asked_at,
                        "asks": g.asks,
                    }
                    for g in gaps
                ],
            )


def _holes(after: int, seqs: list[int]) -> list[SeqRange]:
    """Missing ranges in the sorted `seqs`, counting from `after` (the highest seq already scanned)."""
    holes: list[SeqRange] = []
    previous = after
    for seq in seqs:
        if seq > previous + 1:
            holes.append((previous + 1, seq - 1))
        previous = max(previous, seq)
    return holes
