"""Pass/fail per job against the product's targets, with our own stricter goals shown beside them.

Targets (the product promise): end-to-end p95 under 100 ms per inference, and the int8 model at
least 95% of the full-precision model's accuracy. Goals (ours): p95 under 25 ms for images, under
5 ms per sensor window, int8 at least 99% of fp32.

What is judged: every shipped int8 file at 1 thread (the daemon's per-pipeline budget when three
jobs share a device), the worst one counting. fp32 files are the reference, not judged. A case whose
runtime is not installed on this device is skipped; a case that crashed, timed out or failed its
items fails the job, since a file that cannot run on the device cannot meet a target there.
"""

from __future__ import annotations

from typing import Any

TARGETS: dict[str, float] = {"latency_p95_ms": 100.0, "int8_ratio": 0.95}
GOAL_INT8_RATIO = 0.99
GOAL_P95_MS: dict[str, float] = {"defect": 25.0, "shelf": 25.0, "sensor_anomaly": 5.0, "classify": 25.0}
JUDGED_THREADS = 1
SKIPPED_STATUSES = ("unavailable",)


def _judged_cases(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        c
        for c in cases
        if c.get("precision") == "int8"
        and c.get("threads") == JUDGED_THREADS
        and c.get("status") not in SKIPPED_STATUSES
    ]


def judge_latency(task: str, cases: list[dict[str, Any]], target_ms: float) -> dict[str, Any]:
    """Worst end-to-end p95 of the judged cases; a broken judged case fails."""
    goal = GOAL_P95_MS.get(task)
    judged = _judged_cases(cases)
    out: dict[str, Any] = {"target_ms": target_ms, "goal_ms": goal, "measured_p95_ms": None, "judged_on": None}
    if not judged:
        return {**out, "pass": None, "goal_met": None, "reason": "no int8 file ran at 1 thread"}
    broken = [c for c in judged if c.get("status") != "ok" or c.get("pipeline_errors", 0) > 0]
    if broken:
        names = ", ".join(f"{c['variant']} ({c.get('status')})" for c in broken)
        return {**out, "pass": False, "goal_met": False, "reason": f"did not run cleanly: {names}"}
    worst = max(judged, key=lambda c: float(c["e2e"]["p95_ms"]))
    p95 = float(worst["e2e"]["p95_ms"])
    return {
        **out,
        "measured_p95_ms": p95,
        "judged_on": f"{worst['variant']}@{worst['threads']}t",
        "pass": p95 < target_ms,
        "goal_met": p95 < goal if goal is not None else None,
        "reason": None,
    }


def int8_ratios(accuracy: dict[str, Any] | None) -> dict[str, float]:
    """int8 variant -> ratio of its accuracy to the fp32 reference, where both were measured."""
    if not accuracy or accuracy.get("status") != "ok":
        return {}
    variants: dict[str, dict[str, Any]] = accuracy.get("variants", {})
    return {
        name: float(v["ratio_to_fp32"])
        for name, v in variants.items()
        if v.get("precision") == "int8" and v.get("ratio_to_fp32") is not None
    }


def judge_accuracy(accuracy: dict[str, Any] | None, target: float) -> dict[str, Any]:
    ratios = int8_ratios(accuracy)
    out: dict[str, Any] = {"target_ratio": target, "goal_ratio": GOAL_INT8_RATIO, "ratio": None, "judged_on": None}
    if not ratios:
        reason = (accuracy or {}).get("error") or "no int8 / fp32 accuracy pair measured"
        return {**out, "pass": None, "goal_met": None, "reason": reason}
    name = min(ratios, key=lambda k: ratios[k])
    ratio = ratios[name]
    return {
        **out,
        "ratio": ratio,
        "judged_on": name,
        "pass": ratio >= target,
        "goal_met": ratio >= GOAL_INT8_RATIO,
        "reason": None,
    }


def judge(
    task: str,
    cases: list[dict[str, Any]],
    accuracy: dict[str, Any] | None,
    targets: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The job's verdict: state is pass (both met), fail (either missed) or incomplete (one not measured)."""
    t = {**TARGETS, **(targets or {})}
    latency = judge_latency(task, cases, t["latency_p95_ms"])
    acc = judge_accuracy(accuracy, t["int8_ratio"])
    checks = [latency["pass"], acc["pass"]]
    if any(c is False for c in checks):
        state = "fail"
    elif all(c is True for c in checks):
        state = "pass"
    else:
        state = "incomplete"
    goals = [latency["goal_met"], acc["goal_met"]]
    return {"task": task, "state": state, "pass": state == "pass", "goals_met": all(g is True for g in goals),
            "latency": latency, "accuracy": acc}  # fmt: skip
