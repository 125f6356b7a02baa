"""The dashboard in headless Chromium: login wall, fleet status, KPIs and the latency chart, no console errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from roi_service.api.app import create_app
from roi_service.api.store import ReadinessIn, save_readiness, save_use_case
from roi_service.calc.readiness import ReadinessScores
from roi_service.calc.roi import UseCaseParams
from roi_service.db.engine import make_engine, migrate
from roi_service.ingest.classify import Incoming
from roi_service.ingest.writer import IngestWriter
from roi_service.metrics import ServiceMetrics
from roi_service.simulate import EPOCH, Device, day_of_traffic, payload
from tests.support.chromium import Browser, launch
from tests.support.roi import running_app

TOKEN = "dashboard-token"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
NOW = EPOCH + timedelta(hours=1)


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    engine = make_engine(f"sqlite:///{tmp_path / 'roi.db'}")
    migrate(engine)
    metrics = ServiceMetrics()
    writer = IngestWriter(engine, metrics)
    for device in (Device("plant", "cam1", task="defect"), Device("plant", "vib1", task="sensor_anomaly", seed=3)):
        writer.write([Incoming(t, p, False, EPOCH) for t, p in day_of_traffic(device, results=300)])
        if device.device_id == "cam1":  # vib1 never ran `edge-agent bench --publish`
            topic, bench = device.bench(EPOCH - timedelta(hours=3), {"defect-synthetic": 18.25, "defect-big": 130.0})
            writer.write([Incoming(topic, payload(bench), False, EPOCH)])
    save_use_case(
        engine,
        UseCaseParams(
            name="Line 1 inspection",
            task="defect",
            hourly_cost=30,
            manual_hours_month=80,
            escaped_defect_cost=150,
            hardware_cost=900,
            implementation_cost=4000,
        ),
        NOW,
    )
    scores = ReadinessScores(
        data_availability=4,
        process_standardisation=3,
        technical_infrastructure=4,
        budget_commitment=3,
        organisational_readiness=2,
    )
    save_readiness(engine, ReadinessIn(name="Plant A", scores=scores), NOW)
    app = create_app(engine, TOKEN, metrics, clock=lambda: NOW, default_period="24h")
    with running_app(app) as url:
        yield url
    engine.dispose()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    chromium = launch(tmp_path / "chromium-profile")
    try:
        yield chromium
    finally:
        chromium.close()


def test_dashboard_renders_behind_the_login(base_url: str, browser: Browser) -> None:
    page = browser.new_page()

    page.goto(base_url + "/")
    assert page.evaluate("location.pathname") == "/login"
    assert page.evaluate("document.getElementById('fleet') === null")

    page.evaluate(f"document.querySelector('input[name=token]').value = {json.dumps(TOKEN)}")
    page.evaluate("document.querySelector('#login form').submit()")
    page.wait_for("location.pathname === '/' && document.body.dataset.chartsReady === '1'")

    devices = page.evaluate("[...document.querySelectorAll('#fleet tbody tr')].map(r => r.cells[1].innerText)")
    assert devices == ["cam1", "vib1"]
    assert page.evaluate("document.querySelectorAll('#kpis tr[data-kpi]').length") >= 10
    p95 = page.evaluate("document.querySelector('tr[data-kpi=latency_p95_ms]').cells[2].innerText")
    assert p95 == "48.0"
    chart = page.evaluate(
        "(() => { const c = Chart.getChart('latency-chart');"
        " return {bars: c.data.datasets[0].data.reduce((a, b) => a + b, 0), width: c.width}; })()"
    )
    assert chart["bars"] == 600 and chart["width"] > 100
    benchmarks = page.evaluate(
        "[...document.querySelectorAll('#benchmarks tbody tr')].map(r => [...r.cells].map(c => c.innerText.trim()))"
    )
    assert benchmarks[0][:4] == ["plant/cam1", "2026-01-05 05:00", "ARM Cortex-A72", "130.0 ms defect-big onnx-int8@1t"]
    assert benchmarks[0][4:] == ["defect-big: fail defect-synthetic: pass", "fail"]
    assert benchmarks[1][0] == "plant/vib1" and benchmarks[1][1].startswith("No benchmark yet")
    assert benchmarks[1][-1] == "no benchmark"
    assert "Line 1 inspection" in page.evaluate("document.getElementById('roi').innerText")
    assert "Days 61-90" in page.evaluate("document.getElementById('roadmap').innerText")
    page.screenshot(ARTIFACTS / "roi_dashboard.png")
    assert page.errors == []


def test_dashboard_is_refused_without_the_token(base_url: str, browser: Browser) -> None:
    page = browser.new_page()
    page.goto(base_url + "/?period=7d")
    assert page.evaluate("location.pathname") == "/login"
    assert "Sign in" in page.evaluate("document.body.innerText")
    assert page.evaluate("document.cookie") == ""
    assert page.errors == []
