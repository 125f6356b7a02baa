"""KPIs and measured ROI computed from stored device messages (real SQLite file)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine

from roi_service.calc.evidence import SamplePolicy
from roi_service.calc.roi import UseCaseParams
from roi_service.db.schema import feedback
from roi_service.ingest.classify import Incoming
from roi_service.ingest.writer import IngestWriter
from roi_service.kpi import kpi_report, latency_histogram
from roi_service.kpi_data import Scope, load_window
from roi_service.measure import evaluate
from roi_service.metrics import ServiceMetrics
from roi_service.overview import roi_row
from roi_service.simulate import Device, payload

T0 = datetime(2026, 2, 2, 8, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


def _send(writer: IngestWriter, pair: tuple[str, object], at: datetime, replayed: bool = False) -> None:
    topic, message = pair
    writer.write([Incoming(topic, payload(message, replayed=replayed), False, at)])  # type: ignore[arg-type]


def _fill(engine: Engine) -> list[str]:
    """Hour 0: slow device, 95% under 100 ms; hour 1: 30-minute outage window with 5 minutes offline."""
    writer = IngestWriter(engine, ServiceMetrics())
    dev = Device("plant", "cam1", task="defect")
    _send(writer, dev.status(T0 - HOUR, "online"), T0 - HOUR)
    _send(writer, dev.model(T0 - HOUR, {"f1": 0.93, "int8_vs_fp32": 0.99}), T0 - HOUR)
    for i in range(100):  # previous hour: all fast
        _send(writer, dev.result(T0 - HOUR + i * timedelta(seconds=30), total_ms=30.0), T0)
    events: list[str] = []
    for i in range(100):  # this hour: 95 fast, 5 slow, every 10th flagged
        at = T0 + i * timedelta(seconds=30)
        _send(writer, dev.result(at, total_ms=40.0 if i % 20 else 150.0, flagged=i % 10 == 0), at, replayed=i < 4)
        if i % 10 == 0:
            topic, event = dev.event(at, "defect")
            _send(writer, (topic, event), at)
            events.append(str(event.message_id))
    _send(
        writer,
        dev.metrics(T0 + 50 * timedelta(minutes=1), p50=40, p95=90, p99=150, count=100, under=0.95, backlog=7),
        T0,
    )
    _send(writer, dev.status(T0 + timedelta(minutes=30), "offline"), T0 + timedelta(minutes=30))
    _send(writer, dev.status(T0 + timedelta(minutes=35), "online"), T0 + timedelta(minutes=35))
    with engine.begin() as conn:
        verdicts = ["confirmed"] * 8 + ["false_alarm"] * 2
        conn.execute(
            feedback.insert(),
            [{"event_message_id": e, "verdict": v, "note": "", "created_at": T0} for e, v in zip(events, verdicts)],
        )
    return events


def test_kpis_for_the_device_with_targets_and_trends(engine: Engine) -> None:
    _fill(engine)
    report = kpi_report(engine, Scope.parse("device", "plant/cam1"), end=T0 + HOUR, period=HOUR)
    rows = {row.key: row for row in report.rows}

    assert rows["latency_p95_ms"].current == 90 and rows["latency_p95_ms"].status == "ok"
    assert rows["latency_p99_ms"].current == 150 and rows["latency_p99_ms"].status == "below_target"
    assert rows["under_target_share"].current == pytest.approx(95.0)
    assert rows["uptime_pct"].current == pytest.approx(100 * 55 / 60)
    assert rows["uptime_pct"].target == 99.5 and rows["uptime_pct"].status == "below_target"
    assert rows["uptime_pct"].previous == pytest.approx(100.0) and rows["uptime_pct"].trend == "down"
    assert rows["model_accuracy"].current == pytest.approx(0.93)
    assert rows["operator_precision"].current == pytest.approx(80.0)
    # One result every 30 s: the rate over the data's own 49.5 minutes, with its band and sample.
    assert rows["throughput_per_min"].current == pytest.approx(2.0)
    assert rows["throughput_per_min"].low < 2.0 < rows["throughput_per_min"].high
    # p95 comes from the device's own metrics report: its sample is that report, with no band of ours.
    assert rows["latency_p95_ms"].sample == "100 inferences in 1 metrics report" and rows["latency_p95_ms"].low is None
    assert rows["flag_rate"].sample == "100 items over 50 min of data"
    assert rows["flag_rate"].low < 10 < rows["flag_rate"].high
    assert rows["flag_rate"].current == pytest.approx(10.0)
    assert rows["backlog"].current == 7
    assert rows["replayed"].current == 4
    # No metrics message in the previous hour: latency falls back to the per-result timings (all 30 ms).
    assert rows["latency_p50_ms"].previous == pytest.approx(30.0) and rows["latency_p50_ms"].trend == "up"
    assert len(rows["latency_p95_ms"].series) == 12


def test_scopes_select_their_devices(engine: Engine) -> None:
    _fill(engine)
    other = kpi_report(engine, Scope.parse("site", "elsewhere"), end=T0 + HOUR, period=HOUR)
    job = kpi_report(engine, Scope.parse("job", "defect"), end=T0 + HOUR, period=HOUR)
    assert other.value("throughput_per_min") == 0 and other.value("uptime_pct") is None
    assert job.value("uptime_pct") == pytest.approx(100 * 55 / 60)
    with pytest.raises(ValueError, match="site/device"):
        Scope.parse("device", "cam1")


def test_latency_histogram_counts_every_result(engine: Engine) -> None:
    _fill(engine)
    window = load_window(engine, Scope(), T0, T0 + HOUR)
    edges, counts = latency_histogram(window)
    assert sum(counts) == 100
    assert counts[edges.index(40.0)] == 95
    assert counts[edges.index(150.0)] == 5
    assert counts[-1] == 0  # nothing above 200 ms
    assert edges[-1] == 200.0


def test_measured_roi_of_a_use_case(engine: Engine) -> None:
    _fill(engine)
    params = UseCaseParams(
        name="Line inspection",
        task="defect",
        site="plant",
        hourly_cost=30,
        escaped_defect_cost=200,
        baseline_miss_rate=1.0,
        hardware_cost=1000,
        power_watts=0,
    )
    ranked = evaluate(engine, params, end=T0 + HOUR, period=HOUR)
    assert ranked.measured.catches == 10
    assert (ranked.measured.confirmed, ranked.measured.false_alarms) == (8, 2)
    assert ranked.measured.items == 100
    assert ranked.measured.hours_online == pytest.approx(55 / 60)
    span_h = ranked.evidence.sample.hours  # the data's own range, not the window's hour
    assert 0.5 < span_h < 1.0
    assert ranked.roi.catch_value_month == pytest.approx(8 * 200 * (365.25 / 12 * 24) / span_h)
    assert ranked.roi.payback_months is not None and ranked.roi.payback_months < 1
    assert ranked.evidence.refused and ranked.evidence.needs_days == pytest.approx(7 - span_h / 24)
    assert ranked.evidence.savings_band is None


def test_monthly_roi_refused_below_the_minimum_sample(engine: Engine) -> None:
    """An hour of data gives no monthly figure unless the owner lowers the minimum; then it has a band."""
    _fill(engine)
    params = UseCaseParams(name="Line inspection", task="defect", escaped_defect_cost=200, hardware_cost=1000)
    refused = roi_row(evaluate(engine, params, end=T0 + HOUR, period=timedelta(days=7)))
    assert refused["savings_month_eur"] is None and refused["payback_months"] is None
    assert refused["first_year_roi_pct"] is None and refused["edge_vs_cloud_after_year1"] is None
    assert refused["needs_more_days"] == pytest.approx(7.0, abs=0.1)
    assert refused["sample_items"] == 200 and "200 items over" in refused["sample"]
    low, high = refused["catches_sample_band"]
    assert refused["catches_sample"] == 10 and low < 10 < high
    allowed = roi_row(evaluate(engine, params, T0 + HOUR, timedelta(days=7), SamplePolicy(min_days=0.01)))
    assert allowed["needs_more_days"] is None and allowed["savings_month_eur"] is not None
    low, high = allowed["savings_month_band_eur"]
    assert low < allowed["savings_month_eur"] < high
    day_view = roi_row(evaluate(engine, params, T0 + HOUR, timedelta(days=1), SamplePolicy(min_days=0.01)))
    assert day_view["savings_month_eur"] == allowed["savings_month_eur"], "the same data, the same rate"
