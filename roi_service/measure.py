"""What the devices measured for a use case: the bridge between stored messages and the ROI arithmetic.

Rates are taken over the data's own time range (first to last result or event in the window), never
over the window's length, so 24 h and 7 d views of the same two minutes give the same rate; the sample
and a 95% band travel with every figure, and a monthly figure is refused below the policy's minimum.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Engine

from roi_service.calc.evidence import Sample, SamplePolicy, poisson_band
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


def sample_of(window: Window) -> Sample:
    """Items (results) and the time range the window's results and events actually cover."""
    times = window.results.times + window.events.times
    return Sample(items=len(window.results.rows), first=min(times, default=None), last=max(times, default=None))


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
        period_days=sample_of(window).days,
        inferences=len(window.results.rows),
        items=len(window.results.rows),
        catches=len(catches),
        confirmed=verdicts.count("confirmed"),
        false_alarms=verdicts.count("false_alarm"),
        hours_online=online / 3600,
        uptime_ratio=online / known if known > 0 else None,
    )


@dataclass(frozen=True)
class RoiEvidence:
    """The sample under a use case's figures, how many more days a monthly figure needs, and 95% bands."""

    sample: Sample
    needs_days: float
    catches_band: tuple[float, float]  # events counted in the sample
    savings_band: tuple[float, float] | None  # EUR/month; None while the extrapolation is refused

    @property
    def refused(self) -> bool:
        return self.needs_days > 0


@dataclass(frozen=True)
class RankedUseCase:
    params: UseCaseParams
    measured: Measured
    roi: UseCaseRoi
    impact: float
    evidence: RoiEvidence


def savings_band(params: UseCaseParams, measured: Measured) -> tuple[float, float]:
    """Monthly savings with the catch count at either end of its Poisson band (items are counted exactly)."""
    low, high = poisson_band(measured.catches)
    ends = [use_case_roi(params, replace(measured, catches=round(n))).savings_month for n in (low, high)]
    return min(ends), max(ends)


def evaluate(
    engine: Engine, params: UseCaseParams, end: datetime, period: timedelta, policy: SamplePolicy | None = None
) -> RankedUseCase:
    policy = policy or SamplePolicy()
    window = load_window(engine, scope_of(params), end - period, end)
    measured = measured_from(window, params)
    sample = sample_of(window)
    roi = use_case_roi(params, measured)
    needs = sample.needs_days(policy) if sample.items else policy.min_days
    band = None if needs else savings_band(params, measured)
    evidence = RoiEvidence(sample, needs, poisson_band(measured.catches), band)
    savings = 0.0 if evidence.refused else roi.savings_month  # ranks on nothing it may not show
    impact = impact_score(12 * savings, params.probability_of_success, params.complexity)
    return RankedUseCase(params, measured, roi, impact, evidence)


def rank(
    engine: Engine,
    use_cases: list[UseCaseParams],
    end: datetime,
    period: timedelta,
    policy: SamplePolicy | None = None,
) -> list[RankedUseCase]:
    """Use cases evaluated on measured data, highest impact score first."""
    evaluated = [evaluate(engine, params, end, period, policy) for params in use_cases]
    return sorted(evaluated, key=lambda item: item.impact, reverse=True)
