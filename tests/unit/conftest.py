"""Fixtures of the unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from roi_service.db.engine import make_engine, migrate


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    """roi_service's database in a migrated SQLite file."""
    eng = make_engine(f"sqlite:///{tmp_path / 'roi.db'}")
    migrate(eng)
    return eng
