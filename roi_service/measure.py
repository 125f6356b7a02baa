"""What the devices measured for a use case: the bridge between stored messages and the ROI arithmetic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from roi_service.calc.readiness import impact_score
from roi_service.calc.roi import CATCH_EVENTS, Measured, UseCaseParams, UseCaseRoi, use_case_roi
from roi_service.kpi import online_seconds
from roi_service.kpi_data import Scope, Window, load_window


def scope_of(params: UseCaseParams) -> Scope:
    if params.device_id is not None and params.site is not None:
        return Scope("device", site=params.site, device_id=params.device_id, task=params.task)
    if params.site is not None:
        return Scope("site", site=params.site, task=params.task)
    return Scope("job", task=params.task)


def measured_from(window: Window, params: UseCaseParams) -> Measured:
    events = window.events.rows
    wanted = CATCH_EVENTS.get(params.task, ())
    catches = [row for row in events if row[0] in wanted]
    verdicts = [window.verdicts.get(row[1]) for row in catches]
    online = known = 0.0
    devices = {row[2] for row in window.results.rows} | {row[3] for row in events}
    for key in devices & set(window.transitions):
        on, kn = online_seconds(window.transitions[key], window.start, window.end)
        online, known = online + on, known + kn
    return Measured(
        period_days=(window.end - window.start).total_seconds() / 86400,
        inferences=len(window.results.rows),
        items=len(window.results.rows),
        catches=len(catches),
        confirmed=verdicts.count("confirmed"),
        false_alarms=verdicts.count("false_alarm"),
        hours_online=online / 3600,
        uptime_ratio=online / known if known > 0 else None,
    )


@dataclass(frozen=True)
class RankedUseCase:
    params: UseCaseParams
    measured: Measured
    roi: UseCaseRoi
    impact: float


def evaluate(engine: Engine, params: UseCaseParams, end: datetime, period: timedelta) -> RankedUseCase:
    window = load_window(engine, scope_of(params), end - period, end)
    measured = measured_from(window, params)
    roi = use_case_roi(params, measured)
    impact = impact_score(12 * roi.savings_month, params.probability_of_success, params.complexity)
    return RankedUseCase(params, measured, roi, impact)


def rank(engine: Engine, use_cases: list[UseCaseParams], end: datetime, period: timedelta) -> list[RankedUseCase]:
    """Use cases evaluated on measured data, highest impact score first."""
    evaluated = [evaluate(engine, params, end, period) for params in use_cases]
    return sorted(evaluated, key=lambda item: item.impact, reverse=True)
