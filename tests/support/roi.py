"""roi_service test helpers: database URLs for SQLite and a real PostgreSQL (env ROI_TEST_PG_URL or local server)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from roi_service.db.engine import make_engine, migrate, normalise_url

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/roi_test"


def pg_url() -> str | None:
    """The PostgreSQL server tests use, or None when neither ROI_TEST_PG_URL nor a local server answers."""
    url = normalise_url(os.environ.get("ROI_TEST_PG_URL", DEFAULT_PG_URL))
    try:
        probe = create_engine(url, connect_args={"connect_timeout": 3})
        with probe.connect() as conn:
            conn.execute(text("select 1"))
        probe.dispose()
    except OperationalError:
        return None
    return url


@contextmanager
def pg_schema_url() -> Iterator[str]:
    """A URL whose connections use a fresh schema inside the test database (dropped afterwards), so parallel
    runs do not collide; a roi_service process can be pointed at it."""
    url = pg_url()
    if url is None:
        pytest.skip("no PostgreSQL: set ROI_TEST_PG_URL or run scripts/ensure_postgres.sh")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'create schema "{schema}"'))
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'drop schema "{schema}" cascade'))
        admin.dispose()


@contextmanager
def pg_engine() -> Iterator[Engine]:
    """A migrated engine on a fresh schema of the test database."""
    with pg_schema_url() as url:
        scoped = create_engine(url, pool_pre_ping=True)
        try:
            migrate(scoped)
            yield scoped
        finally:
            scoped.dispose()


@contextmanager
def sqlite_engine(directory: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{directory / 'roi.db'}")
    migrate(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def any_engine(kind: str, directory: Path) -> Iterator[Engine]:
    if kind == "postgresql":
        with pg_engine() as engine:
            yield engine
    else:
        with sqlite_engine(directory) as engine:
            yield engine


@contextmanager
def running_app(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port in a thread; yields its base URL."""
    import threading
    import time

    import uvicorn

    from tests.support.broker import free_port

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws="none", http="h11", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
