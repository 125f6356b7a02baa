"""The benchmark KPI: each device's latest stored `bench` message, judged against the latency target (real SQLite)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine

from roi_service.ingest.classify import Incoming
from roi_service.ingest.writer import IngestWriter
from roi_service.kpi import KpiTargets, kpi_report
from roi_service.kpi_bench import NO_BENCHMARK, device_benchmark
from roi_service.kpi_data import Scope, StoredBench
from roi_service.metrics import ServiceMetrics
from roi_service.overview import kpi_rows_for_csv
from roi_service.simulate import Device, payload

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def _store(engine: Engine, pairs: list[tuple[str, Any]], at: datetime) -> None:
    writer = IngestWriter(engine, ServiceMetrics())
    report = writer.write([Incoming(topic, payload(message), False, at) for topic, message in pairs])
    assert len(report.stored_ids) == len(pairs)


def _fleet(engine: Engine) -> tuple[Device, Device]:
    """cam1: a failing benchmark two days ago, a passing one yesterday; cam2 online but never benchmarked."""
    cam1, cam2 = Device("plant", "cam1", task="shelf"), Device("plant", "cam2", task="defect", seed=2)
    newer = cam1.bench(T0 - DAY, {"shelf-detector": 21.5}, cpu_model="Cortex-A76")
    older = cam1.bench(T0 - 2 * DAY, {"shelf-detector": 140.0}, cpu_model="Cortex-A72")
    # The older run arrives last (a technician re-published an old bench.json): measured time decides, not arrival.
    _store(engine, [cam1.status(T0 - 3 * DAY, "online"), cam2.status(T0 - 3 * DAY, "online"), newer], T0 - DAY)
    _store(engine, [older], T0)
    return cam1, cam2


def test_latest_benchmark_wins_and_a_device_without_one_says_so(engine: Engine) -> None:
    _fleet(engine)
    report = kpi_report(engine, Scope(), end=T0, period=timedelta(hours=1))
    cam1, cam2 = report.benchmarks

    assert (cam1.device_id, cam1.status, cam1.meets_target) == ("cam1", "pass", True)
    assert cam1.worst_int8_p95_ms == 21.5 and cam1.worst_case == "shelf-detector onnx-int8@1t"
    assert cam1.measured_at == T0 - DAY and cam1.cpu_model == "Cortex-A76" and cam1.target_ms == 100.0
    assert [(m.model, m.passed, m.int8_accuracy_ratio) for m in cam1.models] == [("shelf-detector", True, 0.99)]

    assert (cam2.device_id, cam2.status, cam2.detail) == ("cam2", "no_benchmark", NO_BENCHMARK)
    assert cam2.measured_at is None and cam2.worst_int8_p95_ms is None and cam2.models == []

    # Seen from before yesterday's run, the older failing benchmark is the latest one.
    earlier = kpi_report(engine, Scope.parse("device", "plant/cam1"), end=T0 - DAY, period=timedelta(hours=1))
    (old,) = earlier.benchmarks
    assert (old.status, old.worst_int8_p95_ms, old.cpu_model) == ("fail", 140.0, "Cortex-A72")
    assert old.models[0].passed is False and old.models[0].under_target_pct == 50.0


def test_worst_int8_case_at_one_thread_against_the_service_target(engine: Engine) -> None:
    cam = Device("plant", "cam1", task="defect")
    _store(engine, [cam.bench(T0 - DAY, {"defect-a": 30.0, "defect-b": 60.0})], T0 - DAY)
    scope = Scope.parse("device", "plant/cam1")

    (bench,) = kpi_report(engine, scope, end=T0, period=DAY).benchmarks
    # fp32 (150 ms) and the 4-thread int8 case (24 ms) are not judged: the worst 1-thread int8 file is.
    assert (bench.worst_int8_p95_ms, bench.worst_case, bench.status) == (60.0, "defect-b onnx-int8@1t", "pass")
    assert [m.int8_p95_ms for m in bench.models] == [30.0, 60.0]

    # The owner's stricter target fails the device although its own verdicts passed.
    (strict,) = kpi_report(engine, scope, end=T0, period=DAY, targets=KpiTargets(latency_ms=50)).benchmarks
    assert (strict.status, strict.meets_target, strict.target_ms) == ("fail", False, 50.0)
    assert "60.0 ms (defect-b onnx-int8@1t) vs 50 ms" in strict.detail


def test_scopes_and_csv_rows(engine: Engine) -> None:
    _fleet(engine)
    ghost = kpi_report(engine, Scope.parse("device", "plant/ghost"), end=T0, period=DAY).benchmarks
    assert [(b.device_id, b.status) for b in ghost] == [("ghost", "no_benchmark")]
    other_site = kpi_report(engine, Scope.parse("site", "elsewhere"), end=T0, period=DAY).benchmarks
    assert other_site == []
    shelf_job = kpi_report(engine, Scope.parse("job", "shelf"), end=T0, period=DAY).benchmarks
    assert [(b.device_id, b.status) for b in shelf_job] == [("cam1", "pass")]
    defect_job = kpi_report(engine, Scope.parse("job", "defect"), end=T0, period=DAY).benchmarks
    assert defect_job == []  # no device runs or benchmarked the defect job

    rows = kpi_rows_for_csv(kpi_report(engine, Scope(), end=T0, period=DAY))
    bench_rows = {r["scope"]: r for r in rows if r["kpi"] == "benchmark_int8_p95_ms"}
    assert set(bench_rows) == {"plant/cam1", "plant/cam2"}
    assert (bench_rows["plant/cam1"]["current"], bench_rows["plant/cam1"]["status"]) == (21.5, "ok")
    assert "CPU Cortex-A76" in bench_rows["plant/cam1"]["detail"]
    assert "shelf-detector pass" in bench_rows["plant/cam1"]["detail"]
    assert (bench_rows["plant/cam2"]["current"], bench_rows["plant/cam2"]["status"]) == (None, "no_data")
    assert all(set(r) == set(rows[0]) for r in rows)  # one header for the whole export


def test_free_form_summary_rows_never_break_the_kpi() -> None:
    body = {
        "fingerprint": {"cpu_model": 42},
        "verdicts": {"det": False, "weird": "yes"},
        "summary": [
            {"model": "det", "variant": "custom", "precision": "int8", "threads": 1, "e2e_p95_ms": 80},
            {"model": "det", "variant": "tflite-int8", "threads": 1, "status": "timeout", "e2e_p95_ms": None},
            {"model": "det", "variant": "onnx-int8", "threads": True, "e2e_p95_ms": 5.0},
            {"model": "det", "variant": "onnx-int8", "threads": 2, "e2e_p95_ms": "fast"},
            {"model": "weird", "variant": "x-int8", "e2e_p95_ms": float("inf")},
            {"variant": "onnx-fp32"},
        ],
    }
    bench = device_benchmark(StoredBench(("s", "d"), message_id="m", captured_at=T0, payload=body), 100.0)
    unnamed, det, weird = bench.models
    assert (det.int8_p95_ms, det.judged_on, det.passed) == (80.0, "custom@1t", False)
    assert det.not_run == ["tflite-int8@1t (timeout)"]
    assert (unnamed.model, unnamed.int8_p95_ms, unnamed.passed) == ("?", None, None)
    assert (weird.int8_p95_ms, weird.passed, weird.not_run) == (None, None, ["x-int8@?t (no p95)"])
    assert (bench.status, bench.cpu_model, bench.worst_int8_p95_ms) == ("fail", None, 80.0)
    assert "failed: det" in bench.detail
