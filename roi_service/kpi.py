"""KPIs per fleet, site, device or job: target, current value, previous period, trend and a small series.

Beside the windowed rows, each device's latest benchmark (kpi_bench) comes with the report.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from roi_service.calc.evidence import Sample, percentile_band, poisson_band, wilson_band
from roi_service.kpi_bench import DeviceBenchmark, device_benchmarks
from roi_service.kpi_data import DeviceKey, Scope, Window, load_benchmarks, load_window

Direction = Literal["min", "max"]
# Model-card figures tried in this order for "model accuracy" (all on a 0..1 scale).
ACCURACY_KEYS = ("accuracy", "f1", "auroc", "map50", "ap", "precision")


class KpiTargets(BaseModel):
    """Targets from the product's pitch; the owner may change them."""

    model_config = ConfigDict(extra="forbid")
    latency_ms: float = Field(100.0, gt=0)
    under_target_share: float = Field(0.95, ge=0, le=1)
    uptime_pct: float = Field(99.5, ge=0, le=100)
    model_accuracy: float = Field(0.90, ge=0, le=1)
    operator_precision: float = Field(0.90, ge=0, le=1)
    backlog: int = Field(100, ge=0)


@dataclass(frozen=True)
class KpiDef:
    key: str
    label: str
    unit: str
    direction: Direction | None
    target_field: str | None


KPIS: tuple[KpiDef, ...] = (
    KpiDef("latency_p50_ms", "Inference latency p50", "ms", "min", "latency_ms"),
    KpiDef("latency_p95_ms", "Inference latency p95", "ms", "min", "latency_ms"),
    KpiDef("latency_p99_ms", "Inference latency p99", "ms", "min", "latency_ms"),
    KpiDef("under_target_share", "Share under 100 ms", "%", "max", "under_target_share"),
    KpiDef("throughput_per_min", "Throughput", "results/min", None, None),
    KpiDef("uptime_pct", "Uptime", "%", "max", "uptime_pct"),
    KpiDef("model_accuracy", "Model accuracy (model card)", "", "max", "model_accuracy"),
    KpiDef("operator_precision", "Confirmed by operators", "%", "max", "operator_precision"),
    KpiDef("flag_rate", "Flagged results", "%", None, None),
    KpiDef("backlog", "Outbox backlog", "messages", "min", "backlog"),
    KpiDef("replayed", "Replayed messages", "messages", None, None),
)


class KpiRow(BaseModel):
    key: str
    label: str
    unit: str
    target: float | None
    current: float | None
    previous: float | None
    trend: Literal["up", "down", "flat", "n/a"]
    status: Literal["ok", "below_target", "no_data", "info"]
    series: list[float | None] = Field(default_factory=list)
    sample: str = Field("", description="What the current value rests on: items and hours of data.")
    low: float | None = Field(None, description="95% band of the current value, where one is computable.")
    high: float | None = None


@dataclass
class KpiReport:
    scope: Scope
    start: datetime
    end: datetime
    rows: list[KpiRow] = field(default_factory=list)
    benchmarks: list[DeviceBenchmark] = field(default_factory=list)

    def value(self, key: str) -> float | None:
        return next((row.current for row in self.rows if row.key == key), None)


# ---------------------------------------------------------------- one window slice -> values


def _latency(window: Window, start: datetime, end: datetime) -> dict[str, float | None]:
    """Count-weighted means of the devices' own percentiles; raw result timings when no metrics arrived."""
    weights: list[float] = []
    values: list[tuple[float, float, float, float]] = []
    for _key, body in window.metrics.between(start, end):
        for summary in body.get("pipelines", []):
            if window.scope.task is not None and summary.get("task") != window.scope.task:
                continue
            if summary.get("count", 0) > 0:
                weights.append(summary["count"])
                values.append((summary["p50_ms"], summary["p95_ms"], summary["p99_ms"], summary["under_target_ratio"]))
    if weights:
        mean = np.average(np.asarray(values, dtype=float), axis=0, weights=np.asarray(weights, dtype=float))
        return dict(zip(("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "under_target_share"), map(float, mean)))
    timings = np.asarray([r[0] for r in window.results.between(start, end) if r[0] is not None], dtype=float)
    if timings.size == 0:
        return dict.fromkeys(("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "under_target_share"))
    p50, p95, p99 = np.percentile(timings, [50, 95, 99])
    return {
        "latency_p50_ms": float(p50),
        "latency_p95_ms": float(p95),
        "latency_p99_ms": float(p99),
        "under_target_share": float(np.mean(timings < 100.0)),
    }


def _devices(window: Window) -> set[DeviceKey]:
    if window.scope.task is None:
        return set(window.transitions)
    seen = {row[2] for row in window.results.rows} | {row[3] for row in window.events.rows}
    return seen & set(window.transitions)


def online_seconds(timeline: list[tuple[datetime, str]], start: datetime, end: datetime) -> tuple[float, float]:
    """(seconds online, seconds with a known state) in [start, end) from a sorted list of transitions."""
    online = known = 0.0
    for i, (at, state) in enumerate(timeline):
        until = timeline[i + 1][0] if i + 1 < len(timeline) else end
        lo, hi = max(at, start), min(until, end)
        if hi <= lo:
            continue
        seconds = (hi - lo).total_seconds()
        known += seconds
        online += seconds if state == "online" else 0.0
    return online, known


def _uptime(window: Window, start: datetime, end: datetime) -> float | None:
    online = known = 0.0
    for key in _devices(window):
        on, kn = online_seconds(window.transitions[key], start, end)
        online, known = online + on, known + kn
    return 100.0 * online / known if known > 0 else None


def _model_accuracy(window: Window) -> float | None:
    figures: list[float] = []
    for body in window.models.values():
        for model in body.get("models", []):
            figure = next((model["accuracy"][k] for k in ACCURACY_KEYS if k in model.get("accuracy", {})), None)
            if isinstance(figure, int | float) and 0 <= figure <= 1:
                figures.append(float(figure))
    return sum(figures) / len(figures) if figures else None


def _feedback(window: Window, start: datetime, end: datetime) -> float | None:
    verdicts = [window.verdicts.get(row[1]) for row in window.events.between(start, end)]
    confirmed, false = verdicts.count("confirmed"), verdicts.count("false_alarm")
    return 100.0 * confirmed / (confirmed + false) if confirmed + false else None


def _backlog(window: Window, start: datetime, end: datetime) -> float | None:
    latest: dict[DeviceKey, int] = {}
    for key, body in window.metrics.between(start, end):
        latest[key] = int(body.get("backlog", 0))
    return float(sum(latest.values())) if latest else None


def _data_minutes(window: Window, start: datetime, end: datetime) -> float:
    """Minutes the slice's results actually span (a two-minute demo is two minutes, not a 24 h window)."""
    lo, hi = bisect_left(window.results.times, start), bisect_left(window.results.times, end)
    if hi - lo < 2:
        return 0.0
    return (window.results.times[hi - 1] - window.results.times[lo]).total_seconds() / 60


def values(window: Window, start: datetime, end: datetime) -> dict[str, float | None]:
    results = window.results.between(start, end)
    minutes = _data_minutes(window, start, end)
    flagged = [r[1] for r in results if r[1] is not None]
    out: dict[str, float | None] = dict(_latency(window, start, end))
    if out["under_target_share"] is not None:
        out["under_target_share"] = 100.0 * out["under_target_share"]
    out["throughput_per_min"] = (len(results) - 1) / minutes if minutes > 0 else (0.0 if not results else None)
    out["uptime_pct"] = _uptime(window, start, end)
    out["model_accuracy"] = _model_accuracy(window)
    out["operator_precision"] = _feedback(window, start, end)
    out["flag_rate"] = 100.0 * sum(flagged) / len(flagged) if flagged else None
    out["backlog"] = _backlog(window, start, end)
    out["replayed"] = float(len(window.replayed.between(start, end)))
    return out


# ---------------------------------------------------------------- report


def _target(kpi: KpiDef, targets: KpiTargets) -> float | None:
    if kpi.target_field is None:
        return None
    value = float(getattr(targets, kpi.target_field))
    if kpi.key in ("under_target_share", "operator_precision"):
        return 100.0 * value
    return value


def _status(kpi: KpiDef, current: float | None, target: float | None) -> Any:
    if kpi.direction is None or target is None:
        return "info"
    if current is None:
        return "no_data"
    good = current <= target if kpi.direction == "min" else current >= target
    return "ok" if good else "below_target"


def _trend(current: float | None, previous: float | None) -> Any:
    if current is None or previous is None:
        return "n/a"
    scale = max(abs(previous), 1e-9)
    if abs(current - previous) / scale < 0.02:
        return "flat"
    return "up" if current > previous else "down"


def kpi_report(
    engine: Engine, scope: Scope, end: datetime, period: timedelta, targets: KpiTargets | None = None, buckets: int = 12
) -> KpiReport:
    """KPIs over [end - period, end), compared with the period before, with `buckets` points for a sparkline.

    The benchmarks are not windowed: each device's newest one measured before `end` counts.
    """
    targets = targets or KpiTargets()
    start = end - period
    window = load_window(engine, scope, start - period, end)
    current, previous = values(window, start, end), values(window, start - period, start)
    step = period / buckets
    series = [values(window, start + i * step, start + (i + 1) * step) for i in range(buckets)]
    report = KpiReport(scope, start, end)
    report.benchmarks = device_benchmarks(load_benchmarks(engine, scope, end), scope, targets.latency_ms)
    bands = evidence(window, start, end)
    for kpi in KPIS:
        target = _target(kpi, targets)
        sample, band = bands.get(kpi.key, ("", None))
        report.rows.append(
            KpiRow(
                sample=sample,
                low=None if band is None else band[0],
                high=None if band is None else band[1],
                key=kpi.key,
                label=kpi.label,
                unit=kpi.unit,
                target=target,
                current=current[kpi.key],
                previous=previous[kpi.key],
                trend=_trend(current[kpi.key], previous[kpi.key]),
                status=_status(kpi, current[kpi.key], target),
                series=[point[kpi.key] for point in series],
            )
        )
    return report


Band = tuple[float, float] | None


def evidence(window: Window, start: datetime, end: datetime) -> dict[str, tuple[str, Band]]:
    """Per KPI: the sample under its current value and a 95% band (None where no band applies)."""
    results = window.results.between(start, end)
    lo = bisect_left(window.results.times, start)
    times = window.results.times[lo : lo + len(results)]
    sample = Sample(len(results), times[0] if times else None, times[-1] if times else None).describe()
    timings = sorted(float(r[0]) for r in results if r[0] is not None)
    flagged = [bool(r[1]) for r in results if r[1] is not None]
    verdicts = [window.verdicts.get(row[1]) for row in window.events.between(start, end)]
    judged = verdicts.count("confirmed") + verdicts.count("false_alarm")
    minutes = _data_minutes(window, start, end)
    out: dict[str, tuple[str, Band]] = _latency_evidence(window, start, end, sample, timings)
    throughput = poisson_band(len(results))
    out["throughput_per_min"] = (sample, (throughput[0] / minutes, throughput[1] / minutes) if minutes else None)
    out["flag_rate"] = (sample, _pct(wilson_band(sum(flagged), len(flagged))))
    out["operator_precision"] = (f"{judged} events judged", _pct(wilson_band(verdicts.count("confirmed"), judged)))
    out["uptime_pct"] = (sample, None)
    return out


def _latency_evidence(
    window: Window, start: datetime, end: datetime, sample: str, timings: list[float]
) -> dict[str, tuple[str, Band]]:
    """Bands from raw result timings only when the value came from them; devices' own percentiles have none here."""
    reports = [body for _, body in window.metrics.between(start, end)]
    task = window.scope.task
    inferences = sum(
        int(s.get("count", 0)) for body in reports for s in body.get("pipelines", []) if task in (None, s.get("task"))
    )
    keys = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "under_target_share")
    if inferences:
        text = f"{inferences:,} inferences in {len(reports)} metrics report{'' if len(reports) == 1 else 's'}"
        return dict.fromkeys(keys, (text, None))
    out: dict[str, tuple[str, Band]] = {
        f"latency_{q}_ms": (sample, percentile_band(timings, int(q[1:]) / 100)) for q in ("p50", "p95", "p99")
    }
    out["under_target_share"] = (sample, _pct(wilson_band(sum(t < 100.0 for t in timings), len(timings))))
    return out


def _pct(band: Band) -> Band:
    return None if band is None else (100.0 * band[0], 100.0 * band[1])


def latency_histogram(window: Window, bin_ms: float = 10.0, max_ms: float = 200.0) -> tuple[list[float], list[int]]:
    """Per-inference latency counts in bins of `bin_ms`; the last bin holds everything above `max_ms`."""
    timings = np.asarray([r[0] for r in window.results.rows if r[0] is not None], dtype=float)
    edges = np.arange(0.0, max_ms + bin_ms, bin_ms)
    counts, _ = np.histogram(np.clip(timings, 0, max_ms + bin_ms / 2), bins=[*edges.tolist(), np.inf])
    return edges.tolist(), [int(c) for c in counts]
