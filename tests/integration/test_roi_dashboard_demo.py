"""Acceptance: `edge-agent demo --seconds 120` as a new user runs it, read in headless Chromium.

The dashboard must show devices and pipelines as they are (online; line and shelf running, the sensor replay
stopped once it ended), ROI figures with their sample and band or "needs N more days", KPIs with bands,
events with their pictures, and an event page with the defect's heat-map snapshot; the service stores every
result the agent published. Screenshots go to artifacts/ (copies are committed under docs/screenshots/).
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.broker import free_port
from tests.support.chromium import Page, launch

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
LINK = re.compile(r"roi_service dashboard: (http://127\.0\.0\.1:\d+)/login/link/(\S+)")

pytestmark = pytest.mark.slow


def wait_text(log: Path, pattern: re.Pattern[str], timeout_s: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = pattern.search(log.read_text(errors="replace")) if log.exists() else None
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{pattern.pattern!r} not in {log}")


def cells(page: Page, selector: str) -> list[list[str]]:
    return page.evaluate(  # type: ignore[no-any-return]
        f"[...document.querySelectorAll({selector!r})].map(r => [...r.cells].map(c => c.innerText.trim()))"
    )


def wait_dashboard(page: Page, base: str, timeout_s: float = 150.0) -> None:
    """Reload until defect and shelf events have come with pictures (a loaded machine replays more slowly)."""
    deadline = time.monotonic() + timeout_s
    ready = (  # and a minute or so of parts on the line (two a second, fewer on a loaded machine)
        "(parseInt((document.querySelector('#roi tr[data-use-case=\"Line 1 camera inspection\"] td.sample')"
        " || {innerText: '0'}).innerText.replace(/,/g, '')) >= 100)"
        " && document.querySelectorAll('#events img.thumb').length >= 5"
        " && [...document.querySelectorAll('#events tbody tr')].some(r => r.querySelector('img.thumb')"
        " && ['out_of_stock', 'low_stock', 'restocked'].includes(r.cells[3].innerText))"
    )
    seen = ""
    while time.monotonic() < deadline:
        page.goto(base + "/?period=24h")
        if page.evaluate(ready):
            return
        seen = page.evaluate("(document.getElementById('events') || document.body).innerText")
        time.sleep(2)
    raise AssertionError(f"the demo's dashboard never showed pictured defect and shelf events: {seen[:1500]}")


def test_demo_dashboard_tells_the_truth(tmp_path: Path) -> None:
    log = tmp_path / "demo.log"
    env = {**os.environ, "ROI_DEMO_PORT": str(free_port()), "PYTHONUNBUFFERED": "1"}
    env.pop("ROI_DATABASE_URL", None)
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "edge_agent.cli", "demo", "--seconds", "120"],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    browser = launch(tmp_path / "chromium-profile")
    try:
        base, secret = wait_text(log, LINK, 90).groups()
        page = browser.new_page()
        page.goto(f"{base}/login/link/{secret}")
        assert page.evaluate("location.pathname") == "/"
        wait_dashboard(page, base)
        check_dashboard(page)
        page.screenshot(ARTIFACTS / "demo_dashboard.png")
        check_event_page(page, base)
        page.screenshot(ARTIFACTS / "demo_event.png")
        assert page.errors == []
    finally:
        browser.close()
        code = demo.wait(timeout=180)
    assert code == 0, log.read_text(errors="replace")[-3000:]
    check_everything_stored(log, tmp_path / "var" / "roi-demo.db")


def check_dashboard(page: Page) -> None:
    fleet = cells(page, "#fleet tbody tr")
    assert len(fleet) == 1 and fleet[0][1] == "demo-device" and fleet[0][2] == "online"
    assert "line1 (running)" in fleet[0][6] and "aisle3 (running)" in fleet[0][6], fleet[0][6]
    assert re.search(r"pump \((running|stopped)\)", fleet[0][6]), "the sensor replay runs, then stops at its end"
    assert "degraded" not in fleet[0][6] and "starting" not in fleet[0][6]
    roi = {row[0].split(" (")[0]: row for row in cells(page, "#roi tbody tr")}
    assert set(roi) == {"Line 1 camera inspection", "Aisle 3 shelf counting", "Pump 7 vibration watch"}
    for name, row in roi.items():
        assert re.fullmatch(r"[\d,]+ items over [\d.]+ (s|min|h) of data", row[1]), (name, row[1])
        assert re.fullmatch(r"\d+ \([\d.]+ – [\d.]+\)", row[2]), (name, row[2])  # caught, with its 95% band
        assert re.match(r"needs [67]\.\d more days", row[3]), (name, row[3])  # hours of data: no monthly figure
    assert "EUR" not in page.evaluate("document.querySelector('#roi tbody').innerText.split('needs')[0]")
    kpis = {r[0]: r for r in cells(page, "#kpis tr[data-kpi]")}
    p95 = kpis["Inference latency p95 (ms)"]
    from_metrics = re.fullmatch(r"[\d,]+ inferences in \d+ metrics reports?", p95[4])  # the device's percentiles
    from_results = re.fullmatch(r"[\d.,]+ – [\d.,]+", p95[3]) and "items over" in p95[4]  # before any metrics
    assert from_metrics or from_results, p95
    flagged = kpis["Flagged results"]
    assert re.fullmatch(r"[\d.]+ – [\d.]+", flagged[3]) and "items over" in flagged[4], flagged
    throughput = kpis["Throughput (results/min)"]
    assert float(throughput[2].replace(",", "")) > 1, "results per minute of data, not of the 24 h window"
    page.wait_for("[...document.querySelectorAll('#events img.thumb')].every(i => i.complete)")
    roadmap = page.evaluate("document.getElementById('roadmap').innerText")
    assert "ROI not known yet: needs" in roadmap and "payback never" not in roadmap
    loaded = page.evaluate("[...document.querySelectorAll('#events img.thumb')].filter(i => i.naturalWidth > 0).length")
    assert loaded >= 5, "the events list shows the pictures, not file names"


def check_event_page(page: Page, base: str) -> None:
    href = page.evaluate(
        "[...document.querySelectorAll('#events tbody tr')].find(r => r.cells[3].innerText === 'defect')"
        ".querySelector('a').getAttribute('href')"
    )
    page.goto(base + href)
    page.wait_for("document.getElementById('snapshot') && document.getElementById('snapshot').complete")
    assert page.evaluate("document.getElementById('snapshot').naturalWidth") > 100
    text = page.evaluate("document.getElementById('event').innerText")
    assert "heat map" in text and "score" in text and "Confirm" in text and "False alarm" in text


def check_everything_stored(log: Path, db: Path) -> None:
    """The demo's own subscriber counted what the agent published; the service stored every result of it."""
    summary = wait_text(log, re.compile(r"operator received \d+ messages, \d+ events: (\{.*\})"), 10).group(1)
    counts = {k: int(v) for k, v in re.findall(r'"([^"]+)": (\d+)', summary)}
    published = sum(v for k, v in counts.items() if k.endswith("/result"))
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute("select count(*) from messages where kind = 'result'").fetchone()
    assert stored == published > 1000
