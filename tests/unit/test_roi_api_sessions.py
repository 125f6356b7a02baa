"""Dashboard sessions: a signed cookie that expires, cannot be forged or edited, ends at logout, and never
carries the token; the demo's login link works only where one was configured."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import itsdangerous
import pytest

from roi_service.api.app import create_app
from roi_service.api.auth import COOKIE, session_secret
from roi_service.db.engine import make_engine, migrate
from tests.support.roi import running_app

TOKEN = "s3cret-token"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    engine = make_engine(f"sqlite:///{tmp_path / 'roi.db'}")
    migrate(engine)
    app = create_app(engine, TOKEN, session_max_age_s=3600, login_link="demo-link-123")
    with running_app(app) as base:
        yield base
    engine.dispose()


def signed(session: dict[str, object], secret: str, signed_at: float) -> str:
    """A cookie as Starlette's SessionMiddleware writes it, signed at a chosen time."""

    class Signer(itsdangerous.TimestampSigner):
        def get_timestamp(self) -> int:
            return int(signed_at)

    data = base64.b64encode(json.dumps(session).encode())
    return Signer(secret).sign(data).decode()


def dashboard_status(base: str, cookie: str) -> int:
    with httpx.Client(base_url=base, cookies={COOKIE: cookie}) as client:
        return client.get("/", follow_redirects=False).status_code


def test_login_gives_a_signed_session_and_logout_ends_it(url: str) -> None:
    with httpx.Client(base_url=url) as client:
        ok = client.post("/login", content=f"token={TOKEN}", headers=FORM, follow_redirects=False)
        cookie = ok.headers["set-cookie"]
        assert ok.status_code == 303 and TOKEN not in cookie
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower() and "max-age=3600" in cookie.lower()
        assert client.get("/", follow_redirects=False).status_code == 200
        stolen = client.cookies[COOKIE]
        client.post("/logout", follow_redirects=False)
        assert client.get("/", follow_redirects=False).status_code == 303, "logged out"
        assert client.get("/api/v1/devices").status_code == 401
    assert dashboard_status(url, stolen) == 200, "a signed session is valid until it expires"


def test_expired_forged_or_edited_sessions_are_refused(url: str) -> None:
    secret = session_secret(TOKEN)
    assert dashboard_status(url, signed({"auth": True}, secret, time.time())) == 200
    assert dashboard_status(url, signed({"auth": True}, secret, time.time() - 3601)) == 303, "expired"
    assert dashboard_status(url, signed({"auth": True}, "another-key", time.time())) == 303, "forged"
    assert dashboard_status(url, signed({"auth": False}, secret, time.time())) == 303
    edited = base64.b64encode(json.dumps({"auth": True}).encode()).decode() + ".AAAA.BBBB"
    assert dashboard_status(url, edited) == 303
    assert session_secret(TOKEN) != session_secret("other-token"), "a new token logs everyone out"


def test_login_link_opens_the_dashboard_only_with_the_right_secret(url: str) -> None:
    with httpx.Client(base_url=url) as client:
        assert client.get("/login/link/wrong", follow_redirects=False).status_code == 401
        assert client.get("/", follow_redirects=False).status_code == 303
        assert client.get("/login/link/demo-link-123", follow_redirects=False).status_code == 303
        assert client.get("/", follow_redirects=False).status_code == 200


def test_no_login_link_unless_configured(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'roi.db'}")
    migrate(engine)
    with running_app(create_app(engine, TOKEN)) as base, httpx.Client(base_url=base) as client:
        assert client.get("/login/link/None", follow_redirects=False).status_code == 401
        assert client.get("/login/link/", follow_redirects=False).status_code in (401, 404)
    engine.dispose()
