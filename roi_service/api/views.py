"""Server-rendered pages: login, the dashboard and a local API reference (no CDN anywhere)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from roi_service.api import store
from roi_service.api.auth import end_session, is_authorised, start_session, token_matches
from roi_service.calc.readiness import CRITERIA
from roi_service.kpi import latency_histogram
from roi_service.kpi_data import Scope, ScopeKind, load_window
from roi_service.overview import Overview, overview, parse_period, roi_row

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "web" / "templates")
# Scripts and styles only from this origin; the chart data travels as inert JSON in the page.
CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"

router = APIRouter(include_in_schema=False)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


TEMPLATES.env.filters["fmt"] = _fmt


def page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    response = TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return page(request, "login.html", {"error": None})


@router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
    presented = (form.get("token") or [""])[0]
    token: str | None = request.app.state.token
    if token is None or not token_matches(presented, token):
        return page(request, "login.html", {"error": "Wrong token."}, status_code=401)
    start_session(request)
    return RedirectResponse("/", status_code=303)


@router.get("/login/link/{secret}", response_model=None)
def login_link(request: Request, secret: str) -> Response:
    """The demo prints this link so its dashboard opens with one click; off unless the demo sets one."""
    link: str | None = request.app.state.login_link
    if link is None or not token_matches(secret, link):
        return page(request, "login.html", {"error": "That login link is not valid here."}, status_code=401)
    start_session(request)
    return RedirectResponse("/", status_code=303)


@router.post("/logout")
def logout(request: Request) -> Response:
    end_session(request)
    return RedirectResponse("/login", status_code=303)


@router.get("/snapshots/{sha256}.jpg", response_model=None)
def snapshot_file(request: Request, sha256: str) -> Response:
    """A stored snapshot (JPEG only; the name is its sha256, nothing else resolves to a path)."""
    if not is_authorised(request):
        return Response("sign in first\n", status_code=401, media_type="text/plain")
    snapshots = request.app.state.snapshots
    path = snapshots.path_for(sha256) if snapshots is not None else None
    if path is None or not path.is_file():
        return Response("no such snapshot (never received, or removed by retention)\n", 404, media_type="text/plain")
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


@router.get("/events/{message_id}", response_class=HTMLResponse, response_model=None)
def event_page(request: Request, message_id: str) -> Response:
    """One event with its picture (the defect snapshot carries the heat map), details and the verdict buttons."""
    if not is_authorised(request):
        return RedirectResponse("/login", status_code=303)
    found = store.list_events(request.app.state.engine, 1, message_id=message_id)
    if not found:
        return page(request, "error.html", {"message": f"no event {message_id!r}"}, status_code=404)
    event = found[0]
    snapshots = request.app.state.snapshots
    kept = event.snapshot_sha256 is not None and snapshots is not None and snapshots.has(event.snapshot_sha256)
    return page(request, "event.html", {"e": event, "picture": kept})


@router.get("/docs", response_class=HTMLResponse)
def api_docs(request: Request) -> HTMLResponse:
    schema = request.app.openapi()
    operations = [
        {
            "method": method.upper(),
            "path": path,
            "summary": op.get("summary", ""),
            "params": [p["name"] for p in op.get("parameters", [])],
        }
        for path, methods in schema["paths"].items()
        for method, op in methods.items()
    ]
    return page(request, "docs.html", {"operations": operations, "info": schema["info"]})


def _chart_data(view: Overview, histogram: tuple[list[float], list[int]], target_ms: float) -> dict[str, Any]:
    return {
        "histogram": {"edges": histogram[0], "counts": histogram[1], "target_ms": target_ms},
        "kpis": {row.key: row.series for row in view.report.rows},
        "roi": [
            {  # nothing for a use case whose monthly figure is refused (too small a sample)
                "name": item.params.name,
                "savings": None if item.evidence.refused else item.roi.savings_month,
                "payback": None if item.evidence.refused else item.roi.payback_months,
            }
            for item in view.ranked
        ],
    }


@router.get("/", response_class=HTMLResponse, response_model=None)
def dashboard(
    request: Request,
    scope: Annotated[ScopeKind, Query()] = "fleet",
    key: Annotated[str | None, Query()] = None,
    period: Annotated[str | None, Query()] = None,
) -> Response:
    if not is_authorised(request):
        return RedirectResponse("/login", status_code=303)
    state = request.app.state
    period_text = period or state.default_period
    try:
        delta, parsed = parse_period(period_text), Scope.parse(scope, key)
    except ValueError as exc:
        return page(request, "error.html", {"message": str(exc)}, status_code=422)
    end = state.clock()
    view = overview(state.engine, parsed, end, delta, state.targets, state.sample_policy)
    histogram = latency_histogram(load_window(state.engine, parsed, end - delta, end))
    metrics = state.metrics
    context = {
        "view": view,
        "scope": parsed,
        "period": period_text,
        "query": request.url.query,
        "devices": store.list_devices(state.engine),
        "events": store.list_events(state.engine, 20),
        "roi_rows": [roi_row(item) for item in view.ranked],
        "criteria": CRITERIA,
        "min_days": state.sample_policy.min_days,
        "snapshots_kept": state.snapshots.has if state.snapshots is not None else (lambda _sha: False),
        "registry_on": getattr(state, "registry", None) is not None,
        "ingest": {
            "stored": sum(s.value for m in metrics.stored.collect() for s in m.samples if s.name.endswith("_total")),
            "duplicates": metrics.sample("roi_ingest_duplicates_total"),
            "rejected": metrics.total_rejected(),
            "snapshots": metrics.sample("roi_ingest_snapshots_total"),
        },
        "chart_json": json.dumps(_chart_data(view, histogram, state.targets.latency_ms)),
    }
    return page(request, "dashboard.html", context)
