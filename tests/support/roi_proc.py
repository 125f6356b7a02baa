"""roi_service's ingest as a real process (`roi-service ingest`), so tests can SIGTERM or SIGKILL it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def start_roi(db_url: str, broker_port: int, log: Path, client_id: str = "roi-e2e") -> subprocess.Popen[bytes]:
    # Gaps are asked for again every 3 s (20 s in production): the replay of a backlog can itself overflow
    # a queue limit of 100, and each round of asking recovers more of it.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ROI_RESEND_INTERVAL_S": "3"}
    args = ["ingest", "--db", db_url, "--mqtt-port", str(broker_port), "--client-id", client_id]
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "roi_service.cli", *args], stdout=out, stderr=out, env=env)
    wait_log(log, "subscribed to", count=log_count(log, "subscribed to") + 1)
    return proc


def log_count(log: Path, text: str) -> int:
    return log.read_text(errors="replace").count(text) if log.exists() else 0


def wait_log(log: Path, text: str, count: int = 1, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log_count(log, text) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{log.name}: {text!r} not seen {count} time(s) within {timeout_s:.0f}s")
