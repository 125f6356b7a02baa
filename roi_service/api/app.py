"""The FastAPI application: state wiring, the API router, the dashboard, /healthz and /metrics."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from fastapi import FastAPI, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.middleware.sessions import SessionMiddleware

from roi_service import __version__
from roi_service.api import forms, routes, views
from roi_service.api.auth import COOKIE, DEFAULT_MAX_AGE_S, session_secret
from roi_service.calc.evidence import SamplePolicy
from roi_service.kpi import KpiTargets
from roi_service.metrics import ServiceMetrics
from roi_service.registry import api as registry_api
from roi_service.registry.service import RegistryService
from roi_service.snapshots import SnapshotStore

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def create_app(
    engine: Engine,
    token: str | None,
    metrics: ServiceMetrics | None = None,
    targets: KpiTargets | None = None,
    clock: Callable[[], datetime] = _utcnow,
    default_period: str = "7d",
    session_max_age_s: int = DEFAULT_MAX_AGE_S,
    login_link: str | None = None,
    sample_policy: SamplePolicy | None = None,
    snapshots: SnapshotStore | None = None,
    registry: RegistryService | None = None,
) -> FastAPI:
    """Build the app; every dependency is an argument so tests hand in their own database, clock and registry."""
    app = FastAPI(
        title="roi_service",
        version=__version__,
        description="KPIs, ROI, readiness and a 90-day roadmap computed from the edge devices' MQTT output.",
        docs_url=None,  # the stock docs page loads its scripts from a CDN; /docs here is rendered locally
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.token = token
    app.state.metrics = metrics or ServiceMetrics()
    app.state.targets = targets or KpiTargets()
    app.state.clock = clock
    app.state.default_period = default_period
    app.state.sample_policy = sample_policy or SamplePolicy()
    app.state.snapshots = snapshots  # None: pictures are not kept, events show their hash only
    app.state.login_link = login_link  # demo only: a secret path that opens a session without typing the token
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(token),
        session_cookie=COOKIE,
        max_age=session_max_age_s,
        same_site="strict",
        https_only=False,  # the service is often reached over plain HTTP on a site LAN; put TLS in front of it
    )
    app.include_router(routes.router)
    app.include_router(views.router)
    app.include_router(forms.router)
    app.state.registry = registry  # None: the model registry and rollouts are off (404)
    app.include_router(registry_api.api)
    app.include_router(registry_api.downloads)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        try:
            with engine.connect() as conn:
                conn.execute(text("select 1"))
        except SQLAlchemyError as exc:
            return Response(f"database unavailable: {type(exc).__name__}\n", status_code=503, media_type="text/plain")
        return Response("ok\n", media_type="text/plain")

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(generate_latest(app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
