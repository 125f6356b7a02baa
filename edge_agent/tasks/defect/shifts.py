"""Shift accounting: which shift an item falls in, and pass/fail counts and defect rate per shift."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge_agent.errors import ConfigError, ConfigIssue


def resolve_timezone(name: str | None) -> tzinfo | None:
    """The named IANA zone, or None for the device's local time."""
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            "task", [ConfigIssue("task.timezone", f"unknown time zone {name!r}", hint="e.g. Europe/Berlin")]
        ) from None


@dataclass(frozen=True)
class ShiftKey:
    """One occurrence of a shift: its start time label and the calendar day it started on."""

    name: str
    day: date


class ShiftSchedule:
    """Maps a timestamp to the shift running then; shifts start at the given HH:MM times, every day."""

    def __init__(self, starts: list[str], tz: tzinfo | None = None) -> None:
        self.starts = sorted(starts)
        self.tz = tz
        self._minutes = [int(s[:2]) * 60 + int(s[3:]) for s in self.starts]

    def shift_at(self, ts: float) -> ShiftKey:
        moment = datetime.fromtimestamp(ts, tz=self.tz) if self.tz else datetime.fromtimestamp(ts)
        minute = moment.hour * 60 + moment.minute
        current = [i for i, m in enumerate(self._minutes) if m <= minute]
        if current:
            return ShiftKey(self.starts[current[-1]], moment.date())
        # Before the day's first start: still the last shift of the previous day (a night shift).
        return ShiftKey(self.starts[-1], moment.date() - timedelta(days=1))


@dataclass
class ShiftTally:
    key: ShiftKey
    passed: int = 0
    failed: int = 0

    @property
    def items(self) -> int:
        return self.passed + self.failed

    @property
    def defect_rate(self) -> float:
        return self.failed / self.items if self.items else 0.0


class ShiftCounter:
    """Counts verdicts of the current occurrence of each shift; a shift starting again starts from zero."""

    def __init__(self, schedule: ShiftSchedule) -> None:
        self.schedule = schedule
        self._tallies: dict[str, ShiftTally] = {}
        self._lock = threading.Lock()

    def record(self, ts: float, passed: bool) -> ShiftTally:
        key = self.schedule.shift_at(ts)
        with self._lock:
            tally = self._tallies.get(key.name)
            if tally is None or tally.key != key:
                tally = self._tallies[key.name] = ShiftTally(key)
            if passed:
                tally.passed += 1
            else:
                tally.failed += 1
            return ShiftTally(tally.key, tally.passed, tally.failed)

    def summary(self) -> list[dict[str, object]]:
        """Per shift: the day it started, items, failed, defect rate (for a metrics or status message)."""
        with self._lock:
            tallies = sorted(self._tallies.values(), key=lambda t: (t.key.day, t.key.name))
        return [
            {"shift": t.key.name, "day": t.key.day.isoformat(), "items": t.items, "failed": t.failed,
             "defect_rate": round(t.defect_rate, 4)}
            for t in tallies
        ]  # fmt: skip
