"""How much a figure can be trusted: the sample it rests on and a 95% band, or how much more data it needs.

- Counts of events (defects caught, stock-outs, anomalies, results) are Poisson: the band is the
  Wilson-Hilferty approximation of the exact (Garwood) interval, good to a few percent from n = 1.
- Shares (results under target, flagged, confirmed by operators) are binomial: the Wilson score interval.
- Percentiles of raw latencies: the order-statistic interval (binomial ranks around the percentile).
A monthly extrapolation is refused below `SamplePolicy.min_days` of data: the owner sees "needs N more
days", never a payback computed from two minutes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

Z95 = 1.959964


class SamplePolicy(BaseModel):
    """When a measured rate may be extrapolated to a month."""

    model_config = ConfigDict(extra="forbid")
    min_days: float = Field(7.0, ge=0, description="Days of data before any monthly figure is shown (a week's cycle).")


@dataclass(frozen=True)
class Sample:
    """What a figure rests on: items counted and the time range the data covers (its own, not the window's)."""

    items: int
    first: datetime | None
    last: datetime | None

    @property
    def hours(self) -> float:
        if self.first is None or self.last is None:
            return 0.0
        return (self.last - self.first).total_seconds() / 3600

    @property
    def days(self) -> float:
        return self.hours / 24

    def needs_days(self, policy: SamplePolicy) -> float:
        """Days of data still missing before a monthly extrapolation (0 when there is enough)."""
        return max(0.0, policy.min_days - self.days)

    def describe(self) -> str:
        if self.items == 0:
            return "no data"
        hours = self.hours
        if hours < 1 / 60:
            span = f"{hours * 3600:.0f} s"
        elif hours < 1:
            span = f"{hours * 60:.0f} min"
        else:
            span = f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"
        return f"{self.items:,} items over {span} of data"


def poisson_band(count: int, z: float = Z95) -> tuple[float, float]:
    """95% interval for the expected count behind an observed Poisson count."""
    low = 0.0 if count == 0 else count * (1 - 1 / (9 * count) - z / (3 * math.sqrt(count))) ** 3
    n1 = count + 1
    high = n1 * (1 - 1 / (9 * n1) + z / (3 * math.sqrt(n1))) ** 3
    return max(0.0, low), high


def wilson_band(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """95% interval of a proportion (0..1); None without trials."""
    if trials <= 0:
        return None
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile_band(sorted_values: list[float], q: float, z: float = Z95) -> tuple[float, float] | None:
    """95% interval of the q-quantile (0..1) from sorted raw values, by binomial ranks; None if too few."""
    n = len(sorted_values)
    if n < 2:
        return None
    centre, half = n * q, z * math.sqrt(n * q * (1 - q))
    lo = max(0, math.floor(centre - half) - 1)
    hi = min(n - 1, math.ceil(centre + half))
    return sorted_values[lo], sorted_values[hi]
