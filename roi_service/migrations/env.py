"""Alembic environment: runs on the connection handed in by roi_service.db.engine.migrate, or on a URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from roi_service.db.engine import make_engine
from roi_service.db.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url") or "sqlite:///var/roi.db"
    with make_engine(url).connect() as conn:
        _run(conn)
        conn.commit()


run_online()
