"""Container HEALTHCHECK: exit 0 when the agent's /healthz answers 200, 1 otherwise (stdlib only)."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("EDGE_AGENT__HTTP__PORT", "9100")
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            status = int(response.status)
            body = response.read(500).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(500).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        sys.stderr.write(f"healthcheck: {url} unreachable: {exc}\n")
        return 1
    sys.stdout.write(f"healthcheck: {url} -> {status} {body.strip()}\n")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
