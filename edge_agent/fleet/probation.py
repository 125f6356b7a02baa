"""Probation: the new model's error rate, p95 latency and event rate against the old model's, from /metrics.

The judge reads the agent's own Prometheus counters (edge_items_total, edge_errors_total,
edge_events_total and the edge_stage_seconds{stage="total"} histogram) for one pipeline: what
they held at the swap is the old model's record, what they gained since is the new model's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from edge_agent.config import FleetConfig


@dataclass(frozen=True)
class Counts:
    items: float
    errors: float
    events: float
    buckets: tuple[tuple[float, float], ...]  # (le seconds, cumulative count)

    def minus(self, other: Counts) -> Counts:
        old = dict(other.buckets)
        buckets = tuple((le, count - old.get(le, 0.0)) for le, count in self.buckets)
        return Counts(self.items - other.items, self.errors - other.errors, self.events - other.events, buckets)

    @property
    def error_rate(self) -> float:
        total = self.items + self.errors
        return self.errors / total if total else 0.0

    @property
    def event_rate(self) -> float:
        return self.events / self.items if self.items else 0.0

    def p95_s(self) -> float:
        """The upper bound of the bucket holding the 95th percentile (what histogram_quantile bounds)."""
        total = self.buckets[-1][1] if self.buckets else 0.0
        for le, count in self.buckets:
            if total and count >= 0.95 * total:
                return le
        return 0.0


def read_counts(registry: CollectorRegistry, pipeline: str) -> Counts:
    items = errors = events = 0.0
    buckets: dict[float, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.labels.get("pipeline") != pipeline:
                continue
            if sample.name == "edge_items_total":
                items += sample.value
            elif sample.name == "edge_errors_total":
                errors += sample.value
            elif sample.name == "edge_events_total":
                events += sample.value
            elif sample.name == "edge_stage_seconds_bucket" and sample.labels.get("stage") == "total":
                buckets[float(sample.labels["le"])] = sample.value
    return Counts(items, errors, events, tuple(sorted(buckets.items())))


class ProbationJudge:
    """Says why the new model must go, or None while it keeps within every bound."""

    def __init__(self, config: FleetConfig, target_ms: float, baseline: Counts) -> None:
        self.config = config
        self.target_s = target_ms / 1000.0
        self.baseline = baseline

    def verdict(self, now: Counts) -> str | None:
        new = now.minus(self.baseline)
        if new.items + new.errors < self.config.min_items:
            return None
        return self._errors(new) or self._latency(new) or self._events(new)

    def _errors(self, new: Counts) -> str | None:
        old = self.baseline.error_rate
        bound = max(old * self.config.error_rate_factor, old + self.config.error_rate_margin)
        if new.error_rate > bound:
            return f"error rate {new.error_rate:.1%} over the bound {bound:.1%} (previous model {old:.1%})"
        return None

    def _latency(self, new: Counts) -> str | None:
        # Over the target and clearly slower than before (histogram buckets are coarse, a busy machine's
        # p95 wanders by a bucket): a device that never met the target is not rolled back for the same slowness.
        p95, old = new.p95_s(), self.baseline.p95_s()
        if p95 > self.target_s and (not old or p95 > self.config.latency_factor * old) and not math.isinf(old):
            return f"p95 latency {p95 * 1000:.0f} ms over the {self.target_s * 1000:.0f} ms target"
        return None

    def _events(self, new: Counts) -> str | None:
        if self.baseline.items < self.config.min_items:
            return None
        old = self.baseline.event_rate
        if abs(new.event_rate - old) > self.config.event_rate_tolerance:
            return f"events per result {new.event_rate:.2f}, previous model {old:.2f}: the outputs moved"
        return None
