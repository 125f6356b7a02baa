"""Bearer-token protection for the API and the dashboard (header, or a signed, expiring session set by /login).

Sessions are Starlette's SessionMiddleware: an itsdangerous-signed cookie carrying `{"auth": true}` and its
signing time, refused once older than `max_age_s`. The signing key is derived from the API token, so a
leaked cookie jar reveals neither the token nor a way to forge a session, and changing the token logs
everyone out. Tokens are always compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import HTTPException, Request, status

COOKIE = "roi_session"
DEFAULT_MAX_AGE_S = 8 * 3600  # one shift


def session_secret(token: str | None) -> str:
    """The session signing key: derived from the token, or random when the service runs without one."""
    if token is None:
        return secrets.token_hex(32)
    return hmac.new(token.encode(), b"roi-service session key v1", hashlib.sha256).hexdigest()


def token_matches(presented: str, token: str) -> bool:
    return hmac.compare_digest(presented.strip().encode(), token.encode())


def start_session(request: Request) -> None:
    request.session.clear()
    request.session["auth"] = True


def end_session(request: Request) -> None:
    request.session.clear()


def is_authorised(request: Request) -> bool:
    token: str | None = request.app.state.token
    if token is None:
        return True  # the CLI refuses to start without a token unless --insecure-no-auth was given
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() == "bearer" and token_matches(presented, token):
        return True
    return request.session.get("auth") is True


def require_token(request: Request) -> None:
    """FastAPI dependency: 401 with a WWW-Authenticate challenge when the token is missing or wrong."""
    if not is_authorised(request):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
