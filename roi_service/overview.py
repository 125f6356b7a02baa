"""Service layer shared by the API and the dashboard: KPIs, ranked ROI, readiness and the roadmap in one place."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from roi_service.api.store import latest_readiness, list_use_cases
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
    summaries = [
        UseCaseSummary(item.params.name, item.impact, item.roi.savings_month, item.roi.payback_months)
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


def overview(engine: Engine, scope: Scope, end: datetime, period: timedelta, targets: KpiTargets) -> Overview:
    report = kpi_report(engine, scope, end, period, targets)
    ranked = rank(engine, list_use_cases(engine), end, period)
    stored = latest_readiness(engine)
    readiness = assess(stored[1]) if stored else None
    return Overview(report, ranked, readiness, stored[0] if stored else None, roadmap_for(report, ranked, readiness))


def roi_row(item: RankedUseCase) -> dict[str, Any]:
    roi, cloud = item.roi, item.roi.edge_vs_cloud
    return {
        "use_case": item.params.name,
        "task": item.params.task,
        "impact_score": round(item.impact, 2),
        "benefit_month_eur": round(roi.benefit_month, 2),
        "running_cost_month_eur": round(roi.running_cost_month, 2),
        "savings_month_eur": round(roi.savings_month, 2),
        "investment_eur": round(roi.investment, 2),
        "payback_months": None if roi.payback_months is None else round(roi.payback_months, 2),
        "first_year_net_eur": round(roi.first_year_net, 2),
        "first_year_roi_pct": None if roi.first_year_roi_pct is None else round(roi.first_year_roi_pct, 1),
        "catches_month": round(roi.catches_month, 2),
        "inferences_month": round(cloud.inferences_month, 1),
        "cloud_cost_month_eur": round(cloud.cloud_cost_month, 2),
        "edge_cost_month_eur": round(cloud.edge_cost_month, 2),
        "edge_vs_cloud_after_year1": None if cloud.ratio_after_year1 is None else round(cloud.ratio_after_year1, 4),
        "edge_target_met": cloud.target_met,
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
