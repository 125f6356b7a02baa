"""Service layer shared by the API and the dashboard: KPIs, ranked ROI, readiness and the roadmap in one place."""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from roi_service.api.store import latest_data_at, latest_readiness, list_use_cases
from roi_service.calc.evidence import SamplePolicy
from roi_service.calc.readiness import Readiness, assess
from roi_service.calc.roadmap import KpiGap, Phase, UseCaseSummary, build_roadmap
from roi_service.kpi import KpiReport, KpiTargets, kpi_report
from roi_service.kpi_bench import DeviceBenchmark
from roi_service.kpi_data import Scope
from roi_service.measure import RankedUseCase, rank

_PERIOD = re.compile(r"^(\d{1,4})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_period(text: str) -> timedelta:
    """`15m`, `24h`, `7d`, up to about 27 years; ValueError with the accepted forms otherwise."""
    match = _PERIOD.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"period {text!r} must look like 15m, 24h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def roadmap_for(report: KpiReport, ranked: list[RankedUseCase], readiness: Readiness | None) -> list[Phase]:
    gaps = [
        KpiGap(row.key, row.label, row.current, row.target)
        for row in report.rows
        if row.status == "below_target" and row.current is not None and row.target is not None
    ]
    summaries = [  # a refused extrapolation gives the roadmap no savings to plan on
        UseCaseSummary(
            item.params.name,
            item.impact,
            0.0 if item.evidence.refused else item.roi.savings_month,
            None if item.evidence.refused else item.roi.payback_months,
            item.evidence.needs_days,
        )
        for item in ranked
    ]
    return build_roadmap(readiness, summaries, gaps)


@dataclass
class Overview:
    report: KpiReport
    ranked: list[RankedUseCase]
    readiness: Readiness | None
    readiness_name: str | None
    roadmap: list[Phase]
    moved_to_data: bool = False  # the window ends at the newest data, which is older than the window


def data_end(engine: Engine, scope: Scope, end: datetime, period: timedelta) -> tuple[datetime, bool]:
    """The window's end: `end`, or just after the newest data when all of it is older than the window."""
    newest = latest_data_at(engine, scope)
    if newest is not None and newest < end - period:
        return newest + timedelta(microseconds=1), True
    return end, False


def overview(
    engine: Engine,
    scope: Scope,
    end: datetime,
    period: timedelta,
    targets: KpiTargets,
    policy: SamplePolicy | None = None,
) -> Overview:
    end, moved = data_end(engine, scope, end, period)
    report = kpi_report(engine, scope, end, period, targets)
    ranked = rank(engine, list_use_cases(engine), end, period, policy)
    stored = latest_readiness(engine)
    readiness = assess(stored[1]) if stored else None
    name = stored[0] if stored else None
    return Overview(report, ranked, readiness, name, roadmap_for(report, ranked, readiness), moved)


def _money(value: float | None, refused: bool) -> float | None:
    return None if refused or value is None else round(value, 2)


def roi_row(item: RankedUseCase) -> dict[str, Any]:
    """One use case's figures; every monthly extrapolation is None while the sample is below the minimum."""
    roi, cloud, ev = item.roi, item.roi.edge_vs_cloud, item.evidence
    no, ratio = ev.refused, cloud.ratio_after_year1
    return {
        "use_case": item.params.name,
        "task": item.params.task,
        "impact_score": round(item.impact, 2),
        "sample": ev.sample.describe(),
        "sample_items": ev.sample.items,
        "sample_hours": round(ev.sample.hours, 3),
        "needs_more_days": math.ceil(ev.needs_days * 10) / 10 if no else None,  # never "needs 0.0 more days"
        "catches_sample": item.measured.catches,
        "catches_sample_band": [round(ev.catches_band[0], 1), round(ev.catches_band[1], 1)],
        "benefit_month_eur": _money(roi.benefit_month, no),
        "running_cost_month_eur": round(roi.running_cost_month, 2),
        "savings_month_eur": _money(roi.savings_month, no),
        "savings_month_band_eur": None if ev.savings_band is None else [round(v, 2) for v in ev.savings_band],
        "investment_eur": round(roi.investment, 2),
        "payback_months": _money(roi.payback_months, no),
        "first_year_net_eur": _money(roi.first_year_net, no),
        "first_year_roi_pct": None if no or roi.first_year_roi_pct is None else round(roi.first_year_roi_pct, 1),
        "catches_month": _money(roi.catches_month, no),
        "inferences_month": _money(cloud.inferences_month, no),
        "cloud_price_per_1k_eur": item.params.cloud_price_per_1k,
        "cloud_cost_month_eur": _money(cloud.cloud_cost_month, no),
        "edge_cost_month_eur": round(cloud.edge_cost_month, 2),
        "edge_after_year1_month_eur": round(cloud.edge_after_year1_month, 2),
        "edge_vs_cloud_after_year1": None if no or ratio is None else round(ratio, 4),
        "edge_target_met": None if no else cloud.target_met,
        "items_measured": item.measured.items,
        "hours_online_measured": round(item.measured.hours_online, 2),
    }


def to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def kpi_rows_for_csv(report: KpiReport) -> list[dict[str, Any]]:
    """One row per KPI of the scope, then one `benchmark_int8_p95_ms` row per device (its scope is the device)."""
    rows = [
        {
            "scope": report.scope.label,
            "start": report.start.isoformat(),
            "end": report.end.isoformat(),
            "kpi": row.key,
            "label": row.label,
            "unit": row.unit,
            "target": row.target,
            "current": None if row.current is None else round(row.current, 4),
            "previous": None if row.previous is None else round(row.previous, 4),
            "trend": row.trend,
            "status": row.status,
            "detail": "",
        }
        for row in report.rows
    ]
    return rows + [_benchmark_row(report, bench) for bench in report.benchmarks]


_BENCH_STATUS = {"pass": "ok", "fail": "below_target", "incomplete": "no_data", "no_benchmark": "no_data"}
_VERDICT = {True: "pass", False: "fail", None: "no verdict"}


def _benchmark_detail(bench: DeviceBenchmark) -> str:
    if bench.measured_at is None:
        return bench.detail
    parts = [f"{bench.status}, measured {bench.measured_at.isoformat()}"]
    if bench.cpu_model:
        parts.append(f"CPU {bench.cpu_model}")
    parts += [f"{m.model} {_VERDICT[m.passed]}" for m in bench.models]
    return "; ".join(parts)


def _benchmark_row(report: KpiReport, bench: DeviceBenchmark) -> dict[str, Any]:
    return {
        "scope": f"{bench.site}/{bench.device_id}",
        "start": report.start.isoformat(),
        "end": report.end.isoformat(),
        "kpi": "benchmark_int8_p95_ms",
        "label": "Benchmark: worst int8 p95 (edge-agent bench)",
        "unit": "ms",
        "target": bench.target_ms,
        "current": None if bench.worst_int8_p95_ms is None else round(bench.worst_int8_p95_ms, 4),
        "previous": None,
        "trend": "n/a",
        "status": _BENCH_STATUS[bench.status],
        "detail": _benchmark_detail(bench),
    }
