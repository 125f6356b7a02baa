"""Bearer-token protection for the API and the dashboard (header, or a session cookie set by /login)."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import HTTPException, Request, status

COOKIE = "roi_session"


def session_value(token: str) -> str:
    """The cookie holds a digest of the token, so a leaked cookie jar does not reveal the API token itself."""
    return hashlib.sha256(f"roi-session:{token}".encode()).hexdigest()


def is_authorised(request: Request) -> bool:
    token: str | None = request.app.state.token
    if token is None:
        return True  # the CLI refuses to start without a token unless --insecure-no-auth was given
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode()):
        return True
    cookie = request.cookies.get(COOKIE, "")
    return hmac.compare_digest(cookie.encode(), session_value(token).encode())


def require_token(request: Request) -> None:
    """FastAPI dependency: 401 with a WWW-Authenticate challenge when the token is missing or wrong."""
    if not is_authorised(request):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
