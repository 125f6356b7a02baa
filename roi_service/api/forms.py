"""The owner's forms: each use case's costs and savings, and the readiness matrix, with validation and an audit.

Plain HTML forms posted to the server (no script needed); the same pydantic models as the REST API validate
them, and an error names the field and what it accepts. Every change is signed with the editor's name and
kept in the audit log with the values before and after.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from roi_service.api import audit, store
from roi_service.api.auth import is_authorised
from roi_service.api.views import page
from roi_service.calc.readiness import CRITERIA, ReadinessScores
from roi_service.calc.roi import UseCaseParams

router = APIRouter(include_in_schema=False)
FIELDS = {name: info for name, info in UseCaseParams.model_fields.items()}


async def _form(request: Request) -> dict[str, str]:
    parsed = parse_qs((await request.body()).decode("utf-8", errors="replace"), keep_blank_values=True)
    return {key: values[-1].strip() for key, values in parsed.items()}


def _context(request: Request, **extra: Any) -> dict[str, Any]:
    engine = request.app.state.engine
    stored = store.latest_readiness(engine)
    return {
        "use_cases": store.list_use_cases(engine),
        "fields": FIELDS,
        "criteria": CRITERIA,
        "readiness": stored,
        "changes": audit.recent_changes(engine),
        "error": None,
        "values": {},
        **extra,
    }


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "form"
    return f"{field}: {first['msg']}"


def _signed(form: dict[str, str]) -> str | None:
    who = form.pop("who", "")
    return who[:120] if who else None


@router.get("/business", response_class=HTMLResponse, response_model=None)
def business(request: Request) -> Response:
    if not is_authorised(request):
        return RedirectResponse("/login", status_code=303)
    return page(request, "business.html", _context(request))


@router.post("/business/use-case", response_model=None)
async def save_use_case(request: Request) -> Response:
    if not is_authorised(request):
        return RedirectResponse("/login", status_code=303)
    form = await _form(request)
    who = _signed(form)
    values = {k: v for k, v in form.items() if k in FIELDS and v != ""}
    if who is None:
        return page(
            request, "business.html", _context(request, error="who: sign the change with your name", values=form), 422
        )
    try:
        params = UseCaseParams(**values)
    except ValidationError as exc:
        return page(request, "business.html", _context(request, error=_problem(exc), values=form), 422)
    store.save_use_case(request.app.state.engine, params, request.app.state.clock(), who=who)
    return RedirectResponse("/business#audit", status_code=303)


@router.post("/business/readiness", response_model=None)
async def save_readiness(request: Request) -> Response:
    if not is_authorised(request):
        return RedirectResponse("/login", status_code=303)
    form = await _form(request)
    who = _signed(form)
    if who is None:
        return page(request, "business.html", _context(request, error="who: sign the change with your name"), 422)
    try:
        scores = ReadinessScores(**{name: form.get(name, "") for name in CRITERIA})
        body = store.ReadinessIn(name=form.get("name") or "default", scores=scores)
    except ValidationError as exc:
        return page(request, "business.html", _context(request, error=_problem(exc)), 422)
    store.save_readiness(request.app.state.engine, body, request.app.state.clock(), who=who)
    return RedirectResponse("/business#audit", status_code=303)
