"""A lease row in the database: of several roi_service replicas behind `$share/...`, only the holder asks
devices for resends, so a device is never asked twice. The holder renews it; when it stops, another takes over
once it has expired."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, select

from roi_service.db.engine import insert_for
from roi_service.db.schema import leases


def hold(conn: Connection, name: str, holder: str, now: datetime, ttl_s: float) -> bool:
    """Take or renew the lease `name` for `holder`; True when `holder` has it after this call."""
    insert = insert_for(conn.engine)
    stmt = insert(leases).values(name=name, holder=holder, expires_at=now + timedelta(seconds=ttl_s))
    mine_or_expired = (leases.c.holder == stmt.excluded.holder) | (leases.c.expires_at < now)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"holder": stmt.excluded.holder, "expires_at": stmt.excluded.expires_at},
            where=mine_or_expired,
        )
    )
    current: str = conn.execute(select(leases.c.holder).where(leases.c.name == name)).scalar_one()
    return current == holder


def release(conn: Connection, name: str, holder: str) -> None:
    """Give the lease up at shutdown so another replica takes over at once."""
    conn.execute(leases.delete().where((leases.c.name == name) & (leases.c.holder == holder)))
