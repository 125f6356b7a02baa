"""The benchmark KPI per device: the latest `edge-agent bench` summary it published, against the latency target.

The device's verdict per model (latency and int8 accuracy, judged by bench/verdict.py on the device) is
shown as sent. The latency figure is recomputed from the summary rows the way the bench judges it: the
worst end-to-end p95 of the int8 files at the smallest thread count measured (1 thread in a normal run,
the daemon's budget per pipeline), so a target changed on the service applies to it as well.
Summary rows are free-form JSON from the device: every field is read defensively, never trusted.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from roi_service.kpi_data import Scope, StoredBench

BenchStatus = Literal["pass", "fail", "incomplete", "no_benchmark"]
NO_BENCHMARK = "no benchmark yet: run `edge-agent bench --publish --config agent.yaml` on the device"
_NO_THREADS = 1 << 30  # rows without a thread count sort after every real one


class BenchModelKpi(BaseModel):
    model: str
    task: str | None
    passed: bool | None = Field(description="The device's verdict: latency and int8 accuracy targets met.")
    int8_p95_ms: float | None = Field(description="Worst end-to-end p95 of the model's int8 files.")
    judged_on: str | None = Field(description="The case that gave int8_p95_ms, as variant@threads.")
    under_target_pct: float | None = Field(description="Share of that case's inferences under the target, in %.")
    int8_accuracy_ratio: float | None = Field(description="Lowest int8 / fp32 accuracy ratio measured.")
    not_run: list[str] = Field(default_factory=list, description="int8 cases that did not run: variant@threads (why)")


class DeviceBenchmark(BaseModel):
    site: str
    device_id: str
    status: BenchStatus = Field(description="pass, fail, incomplete (a verdict missing) or no_benchmark.")
    detail: str
    message_id: str | None = None
    measured_at: datetime | None = Field(None, description="When the benchmark run started on the device (UTC).")
    cpu_model: str | None = None
    board: str | None = None
    target_ms: float
    worst_int8_p95_ms: float | None = None
    worst_case: str | None = Field(None, description="model variant@threads of worst_int8_p95_ms.")
    meets_target: bool | None = None
    models: list[BenchModelKpi] = Field(default_factory=list)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _threads(row: dict[str, Any]) -> int:
    value = row.get("threads")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else _NO_THREADS


def _is_int8(row: dict[str, Any]) -> bool:
    """The row's precision when it says so; otherwise the variant name (`onnx-int8`, `tflite-int8`)."""
    precision = row.get("precision")
    if isinstance(precision, str):
        return precision == "int8"
    variant = row.get("variant")
    return isinstance(variant, str) and "int8" in re.split(r"[-_.@ ]", variant.lower())


def _case(row: dict[str, Any]) -> str:
    threads = _threads(row)
    return f"{row.get('variant', '?')}@{threads if threads != _NO_THREADS else '?'}t"


def _ran(row: dict[str, Any]) -> bool:
    return row.get("status", "ok") == "ok" and _number(row.get("e2e_p95_ms")) is not None


def _why(row: dict[str, Any]) -> str:
    status = row.get("status", "ok")
    return "no p95" if status == "ok" else str(status)


def model_kpi(name: str, rows: list[dict[str, Any]], verdict: bool | None) -> BenchModelKpi:
    """One model's figures from its summary rows (all variants and thread counts)."""
    int8 = [r for r in rows if _is_int8(r)]
    fewest = min((_threads(r) for r in int8), default=_NO_THREADS)
    judged = [r for r in int8 if _threads(r) == fewest]
    timed = [r for r in judged if _ran(r)]
    worst = max(timed, key=lambda r: _number(r.get("e2e_p95_ms")) or 0.0, default=None)
    share = None if worst is None else _number(worst.get("under_target_ratio"))
    ratios = [x for r in int8 if (x := _number(r.get("accuracy_ratio_to_fp32"))) is not None]
    tasks = {t for r in rows if (t := _text(r.get("task")))}
    return BenchModelKpi(
        model=name,
        task=min(tasks) if tasks else None,
        passed=verdict,
        int8_p95_ms=None if worst is None else _number(worst.get("e2e_p95_ms")),
        judged_on=None if worst is None else _case(worst),
        under_target_pct=None if share is None else 100.0 * share,
        int8_accuracy_ratio=min(ratios) if ratios else None,
        not_run=[f"{_case(r)} ({_why(r)})" for r in judged if not _ran(r)],
    )


def _models(payload: dict[str, Any], task: str | None) -> list[BenchModelKpi]:
    verdicts, summary = payload.get("verdicts"), payload.get("summary")
    verdicts = verdicts if isinstance(verdicts, dict) else {}
    summary = summary if isinstance(summary, list) else []
    rows: dict[str, list[dict[str, Any]]] = {str(name): [] for name in verdicts}
    for row in summary:
        if isinstance(row, dict):
            rows.setdefault(str(row.get("model", "?")), []).append(row)
    out = []
    for name in sorted(rows):
        verdict = verdicts.get(name)
        kpi = model_kpi(name, rows[name], verdict if isinstance(verdict, bool) else None)
        if task is None or kpi.task == task:
            out.append(kpi)
    return out


def _status(models: list[BenchModelKpi], meets_target: bool | None) -> BenchStatus:
    if meets_target is False or any(m.passed is False for m in models):
        return "fail"
    if models and all(m.passed for m in models):
        return "pass"
    return "incomplete"


def _detail(bench: DeviceBenchmark) -> str:
    failed = [m.model for m in bench.models if m.passed is False]
    if bench.worst_int8_p95_ms is None:
        parts = ["no int8 latency in the summary"]
    else:
        parts = [f"worst int8 p95 {bench.worst_int8_p95_ms:.1f} ms ({bench.worst_case}) vs {bench.target_ms:g} ms"]
    if failed:
        parts.append("failed: " + ", ".join(failed))
    if not bench.models:
        parts.append("no model of this scope was benchmarked")
    return "; ".join(parts)


def device_benchmark(stored: StoredBench, target_ms: float, task: str | None = None) -> DeviceBenchmark:
    """The KPI of one device; `task` keeps only the models of one job."""
    site, device = stored.key
    if stored.payload is None:
        return DeviceBenchmark(
            site=site, device_id=device, status="no_benchmark", detail=NO_BENCHMARK, target_ms=target_ms
        )
    models = _models(stored.payload, task)
    timed = [m for m in models if m.int8_p95_ms is not None]
    worst = max(timed, key=lambda m: m.int8_p95_ms or 0.0, default=None)
    meets = None if worst is None or worst.int8_p95_ms is None else worst.int8_p95_ms < target_ms
    fingerprint = stored.payload.get("fingerprint")
    fingerprint = fingerprint if isinstance(fingerprint, dict) else {}
    bench = DeviceBenchmark(
        site=site,
        device_id=device,
        status=_status(models, meets),
        detail="",
        message_id=stored.message_id,
        measured_at=stored.captured_at,
        cpu_model=_text(fingerprint.get("cpu_model")),
        board=_text(fingerprint.get("board")),
        target_ms=target_ms,
        worst_int8_p95_ms=None if worst is None else worst.int8_p95_ms,
        worst_case=None if worst is None else f"{worst.model} {worst.judged_on}",
        meets_target=meets,
        models=models,
    )
    bench.detail = _detail(bench)
    return bench


def device_benchmarks(stored: list[StoredBench], scope: Scope, target_ms: float) -> list[DeviceBenchmark]:
    """One entry per device in scope; a job scope keeps devices that run or benchmarked that job."""
    out = []
    for entry in stored:
        kpi = device_benchmark(entry, target_ms, scope.task)
        if scope.task is None or scope.task in entry.tasks or kpi.models:
            out.append(kpi)
    return out
