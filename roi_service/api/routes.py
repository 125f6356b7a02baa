"""REST API (/api/v1): devices, KPIs, latency histogram, events and feedback, use cases, ROI, readiness, roadmap."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from roi_service.api import store
from roi_service.api.auth import require_token
from roi_service.calc.readiness import CRITERIA, ReadinessScores, assess
from roi_service.calc.roi import ProcessCost, UseCaseParams, calculator, net_roi_pct
from roi_service.kpi import KpiRow, kpi_report, latency_histogram
from roi_service.kpi_bench import DeviceBenchmark
from roi_service.kpi_data import Scope, ScopeKind, load_window
from roi_service.overview import kpi_rows_for_csv, overview, parse_period, roi_row, to_csv

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)])


@dataclass(frozen=True)
class Window:
    """Scope and time window of a request."""

    scope: Scope
    end: datetime
    period_text: str


def window(
    request: Request,
    scope: Annotated[ScopeKind, Query(description="fleet, site, device or job")] = "fleet",
    key: Annotated[str | None, Query(description="site id, 'site/device' or task kind")] = None,
    period: Annotated[str, Query(description="15m, 24h, 7d ...")] = "7d",
    end: Annotated[datetime | None, Query(description="end of the period (UTC); now when omitted")] = None,
) -> Window:
    try:
        parse_period(period)
        parsed = Scope.parse(scope, key)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return Window(scope=parsed, end=end or request.app.state.clock(), period_text=period)


WindowDep = Annotated[Window, Depends(window)]


class CalculatorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    processes: list[ProcessCost] = Field(min_length=1)
    implementation_cost: float = Field(0, ge=0)
    annual_benefit: float | None = Field(None, ge=0, description="With implementation_cost: net ROI %.")


@router.get("/devices", summary="Fleet status: every device's state from its retained status and last will")
def devices(request: Request) -> list[store.DeviceOut]:
    return store.list_devices(request.app.state.engine)


class KpisOut(BaseModel):
    scope: str
    start: datetime
    end: datetime
    rows: list[KpiRow]
    benchmarks: list[DeviceBenchmark] = Field(
        description="Each device in scope with its latest `edge-agent bench --publish` result (not windowed by "
        "period); status no_benchmark for a device that never sent one."
    )


@router.get(
    "/kpis", summary="KPIs with target, current value, previous period and trend; each device's latest benchmark"
)
def kpis(request: Request, w: WindowDep) -> KpisOut:
    report = kpi_report(
        request.app.state.engine, w.scope, w.end, parse_period(w.period_text), request.app.state.targets
    )
    return KpisOut(
        scope=w.scope.label, start=report.start, end=report.end, rows=report.rows, benchmarks=report.benchmarks
    )


@router.get("/kpis.csv", summary="KPIs as CSV, with one benchmark row per device", response_class=Response)
def kpis_csv(request: Request, w: WindowDep) -> Response:
    report = kpi_report(
        request.app.state.engine, w.scope, w.end, parse_period(w.period_text), request.app.state.targets
    )
    return _csv(to_csv(kpi_rows_for_csv(report)), "kpis.csv")


@router.get("/latency/histogram", summary="Per-inference latency distribution (10 ms bins) against the 100 ms target")
def histogram(request: Request, w: WindowDep) -> dict[str, Any]:
    period = parse_period(w.period_text)
    edges, counts = latency_histogram(load_window(request.app.state.engine, w.scope, w.end - period, w.end))
    return {"bin_start_ms": edges, "counts": counts, "target_ms": request.app.state.targets.latency_ms}


@router.get("/events", summary="Recent events with the operators' verdicts")
def events(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[store.EventOut]:
    return store.list_events(request.app.state.engine, limit)


@router.post("/events/{message_id}/feedback", status_code=204, summary="Confirm an event or mark it a false alarm")
def event_feedback(request: Request, message_id: str, body: store.FeedbackIn) -> Response:
    if not store.event_exists(request.app.state.engine, message_id):
        raise HTTPException(404, f"no event with message_id {message_id}")
    store.save_feedback(request.app.state.engine, message_id, body, request.app.state.clock())
    return Response(status_code=204)


@router.get("/use-cases", summary="Business parameters of every use case")
def get_use_cases(request: Request) -> list[UseCaseParams]:
    return store.list_use_cases(request.app.state.engine)


@router.put("/use-cases/{name}", summary="Create or replace a use case's business parameters")
def put_use_case(request: Request, name: str, params: UseCaseParams) -> UseCaseParams:
    if params.name != name:
        raise HTTPException(422, f"body name {params.name!r} differs from the path {name!r}")
    store.save_use_case(request.app.state.engine, params, request.app.state.clock())
    return params


@router.delete("/use-cases/{name}", status_code=204, summary="Delete a use case")
def remove_use_case(request: Request, name: str) -> Response:
    if not store.delete_use_case(request.app.state.engine, name):
        raise HTTPException(404, f"no use case {name!r}")
    return Response(status_code=204)


@router.get("/roi", summary="ROI per use case from measured data, ranked by impact score")
def roi(request: Request, w: WindowDep) -> list[dict[str, Any]]:
    return [roi_row(item) for item in _overview(request, w).ranked]


@router.get("/roi.csv", summary="ROI per use case as CSV", response_class=Response)
def roi_csv(request: Request, w: WindowDep) -> Response:
    return _csv(to_csv([roi_row(item) for item in _overview(request, w).ranked]), "roi.csv")


@router.post("/roi/calculator", summary="Manual vs AI monthly cost: savings and payback (the seed's calculator)")
def roi_calculator(body: CalculatorIn) -> dict[str, Any]:
    result = asdict(calculator(body.processes, body.implementation_cost))
    if body.annual_benefit is not None and body.implementation_cost > 0:
        result["net_roi_pct"] = net_roi_pct(body.annual_benefit, body.implementation_cost)
    return result


@router.put("/readiness", summary="Record a readiness assessment (five criteria scored 1-5)")
def put_readiness(request: Request, body: store.ReadinessIn) -> dict[str, Any]:
    store.save_readiness(request.app.state.engine, body, request.app.state.clock())
    return _readiness_out(body.name, body.scores.model_dump())


@router.get("/readiness", summary="The latest readiness assessment, its score and band")
def get_readiness(request: Request) -> dict[str, Any]:
    latest = store.latest_readiness(request.app.state.engine)
    if latest is None:
        raise HTTPException(404, "no readiness assessment yet: PUT /api/v1/readiness")
    return _readiness_out(latest[0], latest[1].model_dump())


@router.get("/roadmap", summary="The 90-day roadmap from readiness, ranked use cases and KPIs below target")
def roadmap(request: Request, w: WindowDep) -> list[dict[str, Any]]:
    return [asdict(phase) for phase in _overview(request, w).roadmap]


def _overview(request: Request, w: Window) -> Any:
    state = request.app.state
    return overview(state.engine, w.scope, w.end, parse_period(w.period_text), state.targets, state.sample_policy)


def _readiness_out(name: str, scores: dict[str, int]) -> dict[str, Any]:
    result = assess(ReadinessScores(**scores))
    weights = {k: w for k, (w, _) in CRITERIA.items()}
    return {"name": name, "scores": scores, "weights": weights, **asdict(result)}


def _csv(text: str, filename: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(text, media_type="text/csv; charset=utf-8", headers=headers)
