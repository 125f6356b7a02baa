"""The "data completeness" KPI: of the seqs each device produced (results, events, metrics), the share stored.

Lost ranges (the device no longer held them) and open gaps count against it. `completeness()` is what the
dashboard and /metrics show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, func, select

from roi_service.db.schema import device_seq, messages, seq_gaps, seq_losses
from roi_service.ingest.gaps import TRACKED_KINDS


@dataclass(frozen=True)
class DeviceCompleteness:
    site: str
    device_id: str
    expected: int  # seqs from the first one seen to the highest scanned
    lost: int  # reported not held by the device (a known loss)
    missing: int  # in open gaps (asked for, not yet replayed)
    high_water: int

    @property
    def ratio(self) -> float:
        return 1.0 if self.expected <= 0 else max(0.0, (self.expected - self.lost - self.missing) / self.expected)


@dataclass(frozen=True)
class Completeness:
    devices: list[DeviceCompleteness] = field(default_factory=list)
    gaps: int = 0
    oldest_gap_at: datetime | None = None
    last_loss_at: datetime | None = None

    @property
    def expected(self) -> int:
        return sum(d.expected for d in self.devices)

    @property
    def lost(self) -> int:
        return sum(d.lost for d in self.devices)

    @property
    def missing(self) -> int:
        return sum(d.missing for d in self.devices)

    @property
    def ratio(self) -> float:
        """Stored share of every seq produced, all devices (1.0 with no traffic)."""
        expected = self.expected
        return 1.0 if expected <= 0 else max(0.0, (expected - self.lost - self.missing) / expected)


def _per_device(conn: Connection, table: Table, column: ColumnElement[Any]) -> dict[tuple[str, str], int]:
    c = table.c
    rows = conn.execute(
        select(c.site, c.device_id, func.coalesce(func.sum(column), 0)).group_by(c.site, c.device_id)
    ).all()
    return {(str(r[0]), str(r[1])): int(r[2]) for r in rows}


def completeness(conn: Connection) -> Completeness:
    lost = _per_device(conn, seq_losses, seq_losses.c.count)
    missing = _per_device(conn, seq_gaps, seq_gaps.c.last_seq - seq_gaps.c.first_seq + 1)
    out = []
    for site, device, high_water, max_seen in conn.execute(
        select(device_seq.c.site, device_seq.c.device_id, device_seq.c.high_water, device_seq.c.max_seen)
    ):
        first = conn.execute(
            select(func.min(messages.c.seq)).where(
                messages.c.site == site, messages.c.device_id == device, messages.c.kind.in_(TRACKED_KINDS)
            )
        ).scalar_one()
        expected = int(max_seen) - int(first) + 1 if first is not None else 0
        key = (str(site), str(device))
        out.append(DeviceCompleteness(key[0], key[1], expected, lost.get(key, 0), missing.get(key, 0), int(high_water)))
    gaps, oldest = conn.execute(select(func.count(), func.min(seq_gaps.c.opened_at)).select_from(seq_gaps)).one()
    last_loss = conn.execute(select(func.max(seq_losses.c.reported_at))).scalar_one()
    return Completeness(out, int(gaps), oldest, last_loss)
