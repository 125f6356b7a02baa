"""`roi-service` command line: migrate works, user mistakes print one line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from roi_service.cli import main
from roi_service.db.engine import make_engine


def test_migrate_creates_the_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'roi.db'}"
    assert main(["migrate", "--db", url]) == 0
    assert main(["migrate", "--db", url]) == 0  # idempotent
    assert "messages" in inspect(make_engine(url)).get_table_names()
    assert "schema up to date" in capsys.readouterr().out


def test_serve_without_a_token_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ROI_TOKEN", raising=False)
    monkeypatch.delenv("ROI_TOKEN_FILE", raising=False)
    assert main(["serve", "--db", f"sqlite:///{tmp_path / 'roi.db'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["roi-service: no API token: set ROI_TOKEN or --token-file (or --insecure-no-auth for experiments)"]


def test_missing_token_file_and_bad_port_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'roi.db'}"
    assert main(["serve", "--db", db, "--token-file", str(tmp_path / "nope")]) == 2
    assert main(["ingest", "--db", db, "--mqtt-port", "70000"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert "cannot read the token file" in lines[0]
    assert lines[1].startswith("roi-service: invalid setting mqtt.port")


def test_unreachable_database_names_no_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://alice:hunter2@127.0.0.1:1/roi"
    assert main(["migrate", "--db", url]) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err and "alice" not in err and err.count("\n") == 1
