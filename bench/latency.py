"""One latency case (model x variant x threads): bare `runtime.run` and the full pipeline, interleaved, in one run.

Each case runs in its own process by default (`python -m bench.latency --case JSON`), so that its
peak memory is its own, no thread pool of an earlier case competes with it, and a model that
crashes its runtime is reported as broken instead of ending the benchmark.

The end-to-end figure is what the daemon does per item: the source step (JPEG decode or windowing),
preprocess, run, decode, task logic, message building and the durable outbox commit. The bare
`runtime.run` on the same preprocessed input, timed alternately with it, is the floor.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import EdgeAgentError, RuntimeUnavailableError

STAGES = ("source", "preprocess", "inference", "decode", "logic", "publish")
TARGET_MS = 100.0


@dataclass(frozen=True)
class Case:
    """What to measure; plain data so it crosses the process boundary as JSON."""

    model_dir: str
    variant: str
    threads: int
    iterations: int = 300
    warmup: int = 20
    max_seconds: float = 30.0
    pool: int = 16
    seed: int = 0
    target_ms: float = TARGET_MS


def percentiles(samples_ms: list[float] | np.ndarray) -> dict[str, float]:
    arr = np.asarray(samples_ms, dtype=np.float64)
    if arr.size == 0:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "mean_ms": 0.0}
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {
        "p50_ms": round(float(p50), 4),
        "p95_ms": round(float(p95), 4),
        "p99_ms": round(float(p99), 4),
        "max_ms": round(float(arr.max()), 4),
        "mean_ms": round(float(arr.mean()), 4),
    }


def _memory_kb(field: str) -> int | None:
    """VmRSS / VmHWM of this process from /proc (Linux); None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset VmHWM so the peak covers the model and its runs, not the input generation before them."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_kb() -> int:
    hwm = _memory_kb("VmHWM")
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # macOS reports bytes, Linux kilobytes


def runtime_config(fmt: str, threads: int) -> Any:
    from edge_agent.config import LiteRTConfig, OnnxRuntimeConfig

    if fmt == "tflite":
        return LiteRTConfig(kind="litert", threads=threads)
    return OnnxRuntimeConfig(intra_op_threads=threads)


class _StageReader:
    """Per-item stage times from the pipeline's own Prometheus histograms (difference of running sums)."""

    def __init__(self, metrics: Any, pipeline: str) -> None:
        self.metrics = metrics
        self.pipeline = pipeline
        self.previous: dict[str, float] = {}

    def take(self) -> dict[str, float]:
        out = {}
        for stage in STAGES[1:]:
            labels = {"pipeline": self.pipeline, "stage": stage}
            total = self.metrics.registry.get_sample_value("edge_stage_seconds_sum", labels) or 0.0
            out[stage] = (total - self.previous.get(stage, 0.0)) * 1000.0
            self.previous[stage] = total
        return out


def measure(case: Case) -> dict[str, Any]:
    """Load, warm up and time one case; raises EdgeAgentError for a broken model or job."""
    from bench.workload import build_workload
    from edge_agent.runtime.manifest import load_manifest
    from edge_agent.runtime.registry import load_model
    from edge_agent.tasks.base import TaskContext
    from edge_agent.tasks.registry import create_task

    model_dir = Path(case.model_dir)
    manifest = load_manifest(model_dir)
    workload = build_workload(manifest, case.pool, case.seed)
    entry = manifest.files[case.variant] if case.variant in manifest.files else manifest.variant(case.variant)[1]
    base_kb = _memory_kb("VmRSS")
    reset = _reset_peak()
    start_load = time.perf_counter()
    model = load_model(model_dir, case.variant, runtime_config(entry.format, case.threads))
    load_ms = (time.perf_counter() - start_load) * 1000.0
    task = create_task(workload.task_config, model, TaskContext("bench", "lab", "bench"))
    with tempfile.TemporaryDirectory() as tmp:
        timings = _timed_loop(case, workload, task, Path(tmp))
    result = {
        "status": "ok",
        "runtime": model.runtime.description,
        "load_ms": round(load_ms, 2),
        "workload": workload.description,
        "memory": {
            "peak_rss_mb": round(_peak_kb() / 1024.0, 1),
            "base_rss_mb": round(base_kb / 1024.0, 1) if base_kb is not None else None,
            "peak_is_since_load": reset,
        },
    }
    result.update(timings)
    model.runtime.close()
    return result


def _timed_loop(case: Case, workload: Any, task: Any, tmp: Path) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry

    from edge_agent.config import OutboxConfig
    from edge_agent.metrics import AgentMetrics
    from edge_agent.outbox import Outbox
    from edge_agent.pipeline import MessageFactory, Pipeline
    from edge_agent.sinks import MqttSink
    from edge_agent.sources.runner import Handover, SourceRunner

    metrics = AgentMetrics(CollectorRegistry())
    outbox = Outbox(OutboxConfig(path=tmp / "outbox.db"), metrics)
    runner = SourceRunner(_NoSource(), Handover(1, True), metrics, None)  # type: ignore[arg-type]
    factory = MessageFactory("lab", "bench", outbox.next_seq)
    pipeline = Pipeline("bench", task, runner, [MqttSink(outbox)], metrics, factory)
    # Bare-run inputs: the task's own preprocessing of the pool, copied out of its reused buffer.
    feeds = [[f.copy() for f in task.preprocess([workload.source(i)])] for i in range(case.pool)]
    try:
        return _loop(case, workload, task, pipeline, feeds, _StageReader(metrics, "bench"))
    finally:
        outbox.close()


def _loop(
    case: Case, workload: Any, task: Any, pipeline: Any, feeds: list[list[np.ndarray]], reader: _StageReader
) -> dict[str, Any]:
    run = task.model.runtime.run
    clock = time.perf_counter
    for i in range(case.warmup):
        run(feeds[i % len(feeds)])
        pipeline.process([workload.source(i)])
    reader.take()
    errors_before = pipeline.latency.errors
    bare: list[float] = []
    e2e: list[float] = []
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    deadline = clock() + case.max_seconds
    for i in range(case.iterations):
        feed = feeds[i % len(feeds)]
        t0 = clock()
        run(feed)
        t1 = clock()
        item = workload.source(case.warmup + i)
        t2 = clock()
        pipeline.process([item])
        t3 = clock()
        bare.append((t1 - t0) * 1000.0)
        e2e.append((t3 - t1) * 1000.0)
        stages["source"].append((t2 - t1) * 1000.0)
        for stage, value in reader.take().items():
            stages[stage].append(value)
        if clock() > deadline and i + 1 >= min(case.iterations, 30):
            break
    errors = pipeline.latency.errors - errors_before
    return _summary(case, bare, e2e, stages, errors)


def _summary(
    case: Case, bare: list[float], e2e: list[float], stages: dict[str, list[float]], errors: int
) -> dict[str, Any]:
    b, e = percentiles(bare), percentiles(e2e)
    arr = np.asarray(e2e)
    return {
        "iterations": len(e2e),
        "warmup": case.warmup,
        "pipeline_errors": errors,
        "bare": {**b, "throughput_per_s": round(1000.0 * len(bare) / max(sum(bare), 1e-9), 2)},
        "e2e": {
            **e,
            "throughput_per_s": round(1000.0 * len(e2e) / max(sum(e2e), 1e-9), 2),
            "under_target_ratio": round(float((arr < case.target_ms).mean()), 4) if arr.size else 0.0,
        },
        "overhead_ratio_p50": round(e["p50_ms"] / b["p50_ms"], 3) if b["p50_ms"] > 0 else None,
        "overhead_ratio_p95": round(e["p95_ms"] / b["p95_ms"], 3) if b["p95_ms"] > 0 else None,
        "stages": {s: percentiles(v) for s, v in stages.items()},
        "samples_ms": {"bare": [round(v, 3) for v in bare], "e2e": [round(v, 3) for v in e2e]},
    }


class _NoSource:
    name = "bench"
    kind = "bench"
    keep_latest = True


def failed(case: Case, status: str, error: str) -> dict[str, Any]:
    return {"status": status, "error": error[-2000:]}


def run_in_process(case: Case) -> dict[str, Any]:
    try:
        return measure(case)
    except RuntimeUnavailableError as exc:  # e.g. no LiteRT on this device: skipped, not a failure
        return failed(case, "unavailable", str(exc))
    except (EdgeAgentError, ImportError, ValueError, KeyError, OSError) as exc:
        return failed(case, "error", f"{type(exc).__name__}: {exc}")


def run_isolated(case: Case, timeout_s: float) -> dict[str, Any]:
    """Run the case in a fresh interpreter; a crash or a hang becomes a reported failure."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    cmd = [sys.executable, "-m", "bench.latency", "--case", json.dumps(asdict(case))]
    root = Path(__file__).resolve().parents[1]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=root, check=False)
    except subprocess.TimeoutExpired:
        return failed(case, "timeout", f"no result within {timeout_s:.0f} s")
    if done.returncode != 0:
        return failed(case, "crashed", f"exit code {done.returncode}: {done.stderr.strip()[-1500:]}")
    try:
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return failed(case, "crashed", f"no JSON result; stderr: {done.stderr.strip()[-1500:]}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", required=True, help="the Case as JSON (see bench.latency.Case)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    case = Case(**json.loads(args.case))
    print(json.dumps(run_in_process(case)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
