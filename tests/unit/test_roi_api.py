"""roi_service REST API and dashboard over HTTP (uvicorn on loopback, real SQLite)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from roi_service.api.app import create_app
from roi_service.db.engine import make_engine, migrate
from roi_service.ingest.classify import Incoming
from roi_service.ingest.writer import IngestWriter
from roi_service.metrics import ServiceMetrics
from roi_service.simulate import EPOCH, Device, day_of_traffic, payload
from tests.support.roi import running_app

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW = EPOCH + timedelta(hours=2)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    engine = make_engine(f"sqlite:///{tmp_path / 'roi.db'}")
    migrate(engine)
    metrics = ServiceMetrics()
    writer = IngestWriter(engine, metrics)
    for device in (Device("plant", "cam1", task="defect"), Device("plant", "vib1", task="sensor_anomaly", seed=2)):
        writer.write([Incoming(t, p, False, EPOCH) for t, p in day_of_traffic(device, results=120)])
        if device.device_id == "cam1":  # vib1 never ran `edge-agent bench --publish`
            topic, bench = device.bench(EPOCH - timedelta(days=1), {"defect-synthetic": 18.25}, cpu_model="Cortex-A76")
            writer.write([Incoming(topic, payload(bench), False, EPOCH)])
    app = create_app(engine, TOKEN, metrics, clock=lambda: NOW, default_period="24h")
    with running_app(app) as url, httpx.Client(base_url=url) as test_client:
        yield test_client
    engine.dispose()


def test_api_refuses_requests_without_the_token(client: httpx.Client) -> None:
    for path in ("/api/v1/devices", "/api/v1/kpis", "/api/v1/roi.csv"):
        response = client.get(path)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/v1/devices", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_operations_endpoints_are_open(client: httpx.Client) -> None:
    assert client.get("/healthz").text == "ok\n"
    metrics = client.get("/metrics").text
    assert "roi_ingest_stored_total" in metrics and "roi_ingest_rejected_total" in metrics
    assert client.get("/openapi.json").json()["info"]["title"] == "roi_service"
    assert "/api/v1/roadmap" in client.get("/docs").text


def test_devices_and_kpis(client: httpx.Client) -> None:
    devices = client.get("/api/v1/devices", headers=AUTH).json()
    assert [(d["device_id"], d["state"]) for d in devices] == [("cam1", "online"), ("vib1", "online")]
    body = client.get("/api/v1/kpis", params={"scope": "device", "key": "plant/cam1", "period": "24h"}, headers=AUTH)
    rows = {row["key"]: row for row in body.json()["rows"]}
    assert rows["latency_p95_ms"]["current"] == 48.0
    assert rows["uptime_pct"]["current"] == 100.0 and rows["uptime_pct"]["target"] == 99.5
    assert rows["model_accuracy"]["current"] == pytest.approx(0.93)
    benchmarks = body.json()["benchmarks"]
    assert [(b["device_id"], b["status"], b["worst_int8_p95_ms"]) for b in benchmarks] == [("cam1", "pass", 18.25)]
    assert benchmarks[0]["cpu_model"] == "Cortex-A76" and benchmarks[0]["measured_at"] == "2026-01-04T08:00:00Z"
    assert benchmarks[0]["models"][0]["model"] == "defect-synthetic" and benchmarks[0]["models"][0]["passed"] is True
    fleet = client.get("/api/v1/kpis", params={"period": "24h"}, headers=AUTH).json()["benchmarks"]
    assert [(b["device_id"], b["status"]) for b in fleet] == [("cam1", "pass"), ("vib1", "no_benchmark")]
    schema = client.get("/openapi.json").json()
    kpis_out = schema["paths"]["/api/v1/kpis"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert kpis_out == {"$ref": "#/components/schemas/KpisOut"}
    assert "worst_int8_p95_ms" in schema["components"]["schemas"]["DeviceBenchmark"]["properties"]
    bad = client.get("/api/v1/kpis", params={"period": "forever"}, headers=AUTH)
    assert bad.status_code == 422 and "15m" in bad.text


def test_feedback_changes_operator_precision(client: httpx.Client) -> None:
    events = client.get("/api/v1/events", headers=AUTH).json()
    assert len(events) == 12  # every 20th result of two devices
    for event in events[:3]:
        url = f"/api/v1/events/{event['message_id']}/feedback"
        assert client.post(url, json={"verdict": "confirmed"}, headers=AUTH).status_code == 204
    url = f"/api/v1/events/{events[3]['message_id']}/feedback"
    client.post(url, json={"verdict": "false_alarm", "note": "glare"}, headers=AUTH)
    rows = client.get("/api/v1/kpis", params={"period": "24h"}, headers=AUTH).json()["rows"]
    assert next(r for r in rows if r["key"] == "operator_precision")["current"] == 75.0
    missing = client.post("/api/v1/events/nope/feedback", json={"verdict": "confirmed"}, headers=AUTH)
    assert missing.status_code == 404
    wrong = client.post(url, json={"verdict": "maybe"}, headers=AUTH)
    assert wrong.status_code == 422


def test_use_cases_roi_csv_readiness_and_roadmap(client: httpx.Client) -> None:
    case = {
        "name": "Line 1",
        "task": "defect",
        "site": "plant",
        "hourly_cost": 30,
        "manual_hours_month": 80,
        "escaped_defect_cost": 150,
        "hardware_cost": 800,
        "implementation_cost": 4000,
    }
    assert client.put("/api/v1/use-cases/Line 1", json=case, headers=AUTH).status_code == 200
    assert client.put("/api/v1/use-cases/Other", json=case, headers=AUTH).status_code == 422
    roi = client.get("/api/v1/roi", params={"period": "24h"}, headers=AUTH).json()
    assert roi[0]["use_case"] == "Line 1" and roi[0]["items_measured"] == 120
    # 20 minutes of data: below the default 7-day minimum, so no monthly figure, only the sample and what it needs.
    assert roi[0]["payback_months"] is None and roi[0]["savings_month_eur"] is None
    assert 6.9 < roi[0]["needs_more_days"] <= 7 and roi[0]["sample"] == "120 items over 20 min of data"
    exported = list(csv.DictReader(io.StringIO(client.get("/api/v1/roi.csv", headers=AUTH).text)))
    assert exported[0]["use_case"] == "Line 1"

    scores = {
        "data_availability": 1,
        "process_standardisation": 4,
        "technical_infrastructure": 4,
        "budget_commitment": 4,
        "organisational_readiness": 4,
    }
    put = client.put("/api/v1/readiness", json={"name": "Plant A", "scores": scores}, headers=AUTH).json()
    assert (put["score"], put["band"]) == (39, "preparation")  # 3+8+8+12+8
    assert client.get("/api/v1/readiness", headers=AUTH).json()["weakest"] == ["data_availability"]
    phases = client.get("/api/v1/roadmap", params={"period": "24h"}, headers=AUTH).json()
    assert [p["key"] for p in phases] == ["foundation", "implementation", "optimisation"]
    assert "Line 1" in phases[1]["steps"][0]["text"]
    kpis = list(csv.DictReader(io.StringIO(client.get("/api/v1/kpis.csv", headers=AUTH).text)))
    assert {row["kpi"] for row in kpis} >= {"latency_p95_ms", "uptime_pct", "under_target_share"}
    bench_rows = [(r["scope"], r["current"], r["status"]) for r in kpis if r["kpi"] == "benchmark_int8_p95_ms"]
    assert bench_rows == [("plant/cam1", "18.25", "ok"), ("plant/vib1", "", "no_data")]


def test_calculator_reproduces_the_seed(client: httpx.Client) -> None:
    body = {
        "processes": [
            {"name": "Invoices", "manual_cost_month": 2400, "ai_cost_month": 200},
            {"name": "Quality control", "manual_cost_month": 3600, "ai_cost_month": 300},
            {"name": "Content", "manual_cost_month": 4800, "ai_cost_month": 400},
        ],
        "implementation_cost": 85000,
        "annual_benefit": 455000,
    }
    result = client.post("/api/v1/roi/calculator", json=body, headers=AUTH).json()
    assert (result["manual_cost_month"], result["ai_cost_month"], result["savings_month"]) == (10800, 900, 9900)
    assert round(result["net_roi_pct"]) == 435


def test_dashboard_needs_login(client: httpx.Client) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert (
        client.post(
            "/login", content="token=wrong", headers={"Content-Type": "application/x-www-form-urlencoded"}
        ).status_code
        == 401
    )
    ok = client.post(
        "/login",
        content=f"token={TOKEN}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and TOKEN not in ok.headers["set-cookie"]
    page = client.get("/")
    assert page.status_code == 200
    assert "cam1" in page.text and "Inference latency p95" in page.text and "latency-chart" in page.text
    assert 'data-device="plant/cam1" data-status="pass"' in page.text and "Cortex-A76" in page.text
    assert 'data-device="plant/vib1" data-status="no_benchmark"' in page.text and "No benchmark yet" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'href="/registry"' not in page.text  # no registry configured: no link to a page that would 404
    assert client.get("/static/vendor/chart.umd.min.js").status_code == 200
