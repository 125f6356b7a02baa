"""Resumable, size-capped download into the staging slot, over TLS with the broker's CA options."""

from __future__ import annotations

import http.client
import logging
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from edge_agent.errors import UpdateError

logger = logging.getLogger(__name__)
CHUNK = 1 << 16


class Downloader:
    """GETs a URL into `dest`; a partial `dest` from an earlier try is resumed with an HTTP Range request."""

    def __init__(
        self, context: ssl.SSLContext | None, max_bytes: int, allow_plain_http: bool = False, timeout_s: float = 30.0
    ) -> None:
        self.context = context
        self.max_bytes = max_bytes
        self.allow_plain_http = allow_plain_http
        self.timeout_s = timeout_s

    def fetch(self, url: str, dest: Path, headers: Mapping[str, str] | None = None, size: int | None = None) -> Path:
        if not url.startswith(("https://", "http://")):
            raise UpdateError(f"download {url}: only https:// (or http:// on test benches) is fetched")
        if url.startswith("http://") and not self.allow_plain_http:
            raise UpdateError(f"download {url}: plain http is refused; serve it over https (fleet.allow_plain_http)")
        cap = min(size, self.max_bytes) if size else self.max_bytes
        dest.parent.mkdir(parents=True, exist_ok=True)
        have = dest.stat().st_size if dest.exists() else 0
        request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310 - http(s) only, checked above
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s, context=self._context(url)) as response:  # noqa: S310
                resumed = have > 0 and response.status == 206
                if have and not resumed:
                    logger.info("download %s: the server ignored the range; starting again", url)
                self._copy(response, dest, have if resumed else 0, cap, url)
        except urllib.error.HTTPError as exc:
            raise UpdateError(f"download {url}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError, ssl.SSLError, http.client.HTTPException) as exc:
            raise UpdateError(f"download {url}: {getattr(exc, 'reason', exc)} (partial file kept to resume)") from exc
        return dest

    def _context(self, url: str) -> ssl.SSLContext | None:
        return self.context if url.startswith("https://") else None

    def _copy(self, response: object, dest: Path, offset: int, cap: int, url: str) -> None:
        written = offset
        with dest.open("r+b" if offset else "wb") as out:
            out.seek(offset)
            out.truncate()
            while block := response.read(CHUNK):  # type: ignore[attr-defined]
                written += len(block)
                if written > cap:
                    out.close()
                    dest.unlink()
                    raise UpdateError(f"download {url}: larger than {cap} bytes (fleet.max_download_bytes or size)")
                out.write(block)
        length = response.headers.get("Content-Length")  # type: ignore[attr-defined]
        if length is not None and written - offset < int(length):
            raise UpdateError(f"download {url}: the transfer stopped at {written} bytes (partial file kept to resume)")
