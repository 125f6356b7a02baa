"""The benchmark's pass/fail verdict against the 100 ms / 95% targets, on hand-made measurements."""

from __future__ import annotations

from typing import Any

import pytest

from bench.verdict import judge


def case(variant: str, p95: float, threads: int = 1, status: str = "ok", errors: int = 0) -> dict[str, Any]:
    precision = "fp32" if "fp32" in variant else "int8"
    row: dict[str, Any] = {"variant": variant, "precision": precision, "threads": threads, "status": status}
    if status == "ok":
        row.update(e2e={"p95_ms": p95}, pipeline_errors=errors)
    return row


def accuracy(**ratios: float | None) -> dict[str, Any]:
    variants = {
        name.replace("_", "-"): {"precision": "fp32" if "fp32" in name else "int8", "ratio_to_fp32": r}
        for name, r in ratios.items()
    }
    return {"status": "ok", "variants": variants}


GOOD_ACC = accuracy(onnx_fp32=1.0, onnx_int8=0.995, tflite_int8=0.992)


def test_fast_and_accurate_int8_files_pass_target_and_goals() -> None:
    cases = [case("onnx-fp32", 40.0), case("onnx-int8", 12.0), case("tflite-int8", 20.0), case("onnx-int8", 9.0, 2)]
    v = judge("shelf", cases, GOOD_ACC)
    assert v["state"] == "pass" and v["pass"] is True and v["goals_met"] is True
    assert v["latency"]["measured_p95_ms"] == 20.0  # the worst int8 file at 1 thread counts
    assert v["latency"]["judged_on"] == "tflite-int8@1t"
    assert v["accuracy"]["ratio"] == pytest.approx(0.992)


def test_slow_fp32_reference_is_not_judged_but_a_slow_int8_file_fails() -> None:
    fast = judge("defect", [case("onnx-fp32", 250.0), case("onnx-int8", 30.0)], GOOD_ACC)
    assert fast["state"] == "pass"
    assert fast["latency"]["goal_met"] is False  # 30 ms misses our 25 ms goal but meets the 100 ms target
    assert fast["goals_met"] is False
    slow = judge("defect", [case("onnx-int8", 30.0), case("tflite-int8", 100.0)], GOOD_ACC)
    assert slow["state"] == "fail"
    assert slow["latency"]["pass"] is False  # 100 ms is not under 100 ms


def test_int8_below_95_percent_of_fp32_fails_even_when_fast() -> None:
    v = judge("shelf", [case("onnx-int8", 5.0)], accuracy(onnx_fp32=1.0, onnx_int8=0.97, tflite_int8=0.94))
    assert v["state"] == "fail"
    assert v["accuracy"]["judged_on"] == "tflite-int8"
    assert v["latency"]["pass"] is True


def test_ratio_between_target_and_goal_passes_without_meeting_the_goal() -> None:
    v = judge("shelf", [case("onnx-int8", 5.0)], accuracy(onnx_fp32=1.0, onnx_int8=0.96))
    assert v["state"] == "pass"
    assert v["accuracy"]["goal_met"] is False


def test_sensor_goal_is_five_ms_per_window() -> None:
    v = judge("sensor_anomaly", [case("onnx-int8", 6.0)], GOOD_ACC)
    assert v["latency"]["goal_ms"] == 5.0
    assert v["latency"]["goal_met"] is False
    assert v["state"] == "pass"


def test_missing_accuracy_makes_the_verdict_incomplete_not_pass() -> None:
    v = judge("defect", [case("onnx-int8", 5.0)], {"status": "error", "error": "no data", "variants": {}})
    assert v["state"] == "incomplete"
    assert v["pass"] is False
    assert v["accuracy"]["reason"] == "no data"


def test_broken_or_failing_int8_file_fails_the_job() -> None:
    crashed = judge("shelf", [case("onnx-int8", 5.0), case("tflite-int8", 0, status="crashed")], GOOD_ACC)
    assert crashed["state"] == "fail"
    assert "tflite-int8" in crashed["latency"]["reason"]
    failing_items = judge("shelf", [case("onnx-int8", 5.0, errors=3)], GOOD_ACC)
    assert failing_items["state"] == "fail"


def test_runtime_not_installed_on_the_device_is_skipped() -> None:
    v = judge("shelf", [case("onnx-int8", 5.0), case("tflite-int8", 0, status="unavailable")], GOOD_ACC)
    assert v["state"] == "pass"
    assert v["latency"]["judged_on"] == "onnx-int8@1t"


def test_no_int8_file_at_one_thread_is_incomplete() -> None:
    v = judge("classify", [case("onnx-fp32", 5.0), case("onnx-int8", 5.0, threads=2)], GOOD_ACC)
    assert v["state"] == "incomplete"
    assert v["latency"]["pass"] is None


def test_a_stricter_latency_target_is_applied() -> None:
    v = judge("shelf", [case("onnx-int8", 60.0)], GOOD_ACC, {"latency_p95_ms": 50.0})
    assert v["state"] == "fail"
    assert v["latency"]["target_ms"] == 50.0
