"""HTTP API of the registry: upload and list versions, start and watch rollouts, the devices' models.

    POST /api/registry/models            body: a model folder as .tar.gz (token)
    GET  /api/registry/models            every version (token)
    POST /api/registry/rollouts          {"name", "version", "rollback_to"?, "devices"?} (token)
    GET  /api/registry/rollouts          rollouts and each device's state (token)
    GET  /api/registry/devices           what each device runs and its last update step (token)
    GET  /registry                       a page: each device's model and each rollout's state (token or login)
    GET  /registry/archive/N/V.tar.gz    the archive, for devices (no token: they check its sha256 and
                                         signature from the authenticated command)
"""

from __future__ import annotations

import html
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field

from roi_service.api.auth import require_token
from roi_service.registry.service import RegistryService
from roi_service.registry.store import RegistryError

api = APIRouter(prefix="/api/registry", dependencies=[Depends(require_token)])
downloads = APIRouter(prefix="/registry")
MAX_UPLOAD = 512 * 1024 * 1024


class RolloutRequest(BaseModel):
    name: str
    version: str
    rollback_to: str | None = Field(None, description="Version the devices go back to when the rollout stops.")
    devices: list[str] | None = Field(None, description="site/device ids; every device running the model if omitted.")


def service(request: Request) -> RegistryService:
    found: RegistryService | None = getattr(request.app.state, "registry", None)
    if found is None:
        raise HTTPException(404, "the model registry is off (start roi-service with ROI_REGISTRY_URL)")
    return found


@api.post("/models", status_code=201)
async def upload(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_UPLOAD:
        raise HTTPException(413, f"archives are limited to {MAX_UPLOAD} bytes")
    try:
        return asdict(service(request).registry.add(body))
    except RegistryError as exc:
        raise HTTPException(400, str(exc)) from exc


@api.get("/models")
def versions(request: Request) -> list[dict[str, Any]]:
    return [asdict(v) for v in service(request).registry.versions()]


@api.post("/rollouts", status_code=201)
def start_rollout(body: RolloutRequest, request: Request) -> dict[str, Any]:
    svc = service(request)
    if svc.link is None:
        raise HTTPException(503, "rollouts need the broker: start roi-service with ROI_MQTT_HOST")
    devices = body.devices if body.devices is not None else svc.devices_running(body.name)
    try:
        return asdict(svc.engine.start(body.name, body.version, devices, body.rollback_to))
    except RegistryError as exc:
        raise HTTPException(400, str(exc)) from exc


@api.get("/rollouts")
def rollouts(request: Request) -> list[dict[str, Any]]:
    return [asdict(r) for r in service(request).engine.rollouts]


@api.get("/devices")
def devices(request: Request) -> list[dict[str, Any]]:
    return service(request).device_rows()


@downloads.get("/archive/{name}/{version}.tar.gz", include_in_schema=False)
def archive(name: str, version: str, request: Request) -> FileResponse:
    svc = service(request)
    try:
        svc.registry.get(name, version)
    except RegistryError as exc:
        raise HTTPException(404, str(exc)) from exc
    return FileResponse(svc.registry.archive_path(name, version), media_type="application/gzip")


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@downloads.get("", response_class=HTMLResponse, dependencies=[Depends(require_token)])
def page(request: Request) -> HTMLResponse:
    svc = service(request)
    devices = _table(["device", "pipeline", "model", "version", "last update step", "reason"],
                     [[r["device"], r["pipeline"], r["model"], r["version"], r["update_step"] or "",
                       r["update_reason"]] for r in svc.device_rows()])  # fmt: skip
    back = '<p><a href="/">Dashboard</a></p>'
    parts = [f"{back}<h1>Models on the fleet</h1>{devices}", "<h1>Rollouts</h1>"]
    for r in reversed(svc.engine.rollouts):
        stage = f"stage {r.stage + 1} of {len(r.stages)} ({round(r.stages[r.stage] * 100)} %)"
        parts.append(f"<h2>{html.escape(r.name)} {html.escape(r.version)}: {html.escape(r.state)}, {stage}</h2>")
        parts.append(f"<p>{html.escape(r.reason)}</p>" if r.reason else "")
        parts.append(_table(["device", "stage", "status", "detail"],
                            [[d.device, d.stage + 1, d.status, d.detail] for d in r.devices]))  # fmt: skip
    style = "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}</style>"
    return HTMLResponse(f"<!doctype html><title>Fleet models</title>{style}{''.join(parts)}")
