"""Who changed the owner's figures: one row per change of a use case or the readiness matrix, before and after."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, desc, select

from roi_service.db.schema import audit_log


def record(
    conn: Connection, at: datetime, who: str, what: str, target: str, before: str | None, after: str | None
) -> None:
    """Write one change inside the caller's transaction, so a change and its audit row commit together."""
    if before == after:
        return
    conn.execute(
        audit_log.insert().values(at=at, who=who[:120], what=what, target=target[:120], before=before, after=after)
    )


@dataclass(frozen=True)
class Change:
    at: datetime
    who: str
    what: str
    target: str
    fields: list[str]  # "field: old -> new" for each field that changed

    @property
    def summary(self) -> str:
        return "; ".join(self.fields) if self.fields else "no field changed"


def _diff(before: str | None, after: str | None) -> list[str]:
    old: dict[str, Any] = _flat(json.loads(before)) if before else {}
    new: dict[str, Any] = _flat(json.loads(after)) if after else {}
    if not old:
        return ["created"]
    if not new:
        return ["deleted"]
    return [f"{k}: {old.get(k)} → {new.get(k)}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def _flat(body: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in body.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def recent_changes(engine: Engine, limit: int = 20) -> list[Change]:
    query = select(audit_log).order_by(desc(audit_log.c.at), desc(audit_log.c.id)).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [Change(r["at"], r["who"], r["what"], r["target"], _diff(r["before"], r["after"])) for r in rows]
