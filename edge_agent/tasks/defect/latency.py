"""Per-item latency of a defect model folder as the daemon runs it: preprocess + backbone + scoring, 1 thread.

    python -m edge_agent.tasks.defect.latency models/my-part [--variant onnx-int8] [--runs 200]

Run as its own process so that numpy's BLAS (the nearest-neighbour product) is held to one thread as well
(OPENBLAS_NUM_THREADS is read when numpy loads); prints one JSON line {"p50_ms", "p95_ms", ...}. With one
thread everything runs on the calling thread, so its CPU time per item ("cpu_p95_ms") is what the item
costs without other processes competing for the core; wall time on a busy machine includes the waiting.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def measure(model_dir: Path, variant: str, runs: int, seed: int = 0) -> dict[str, Any]:
    from edge_agent.config import LiteRTConfig, OnnxRuntimeConfig
    from edge_agent.runtime.manifest import load_manifest
    from edge_agent.runtime.registry import load_model
    from edge_agent.tasks.defect.scoring import scorer_for

    manifest = load_manifest(model_dir)
    fmt = manifest.files[variant].format
    config = LiteRTConfig(kind="litert", threads=1) if fmt == "tflite" else OnnxRuntimeConfig(intra_op_threads=1)
    model = load_model(model_dir, variant, config)
    scorer = scorer_for(model)
    spec = manifest.inputs[0]
    h, w = spec.shape[1:3] if spec.layout == "NHWC" else spec.shape[2:4]
    assert h is not None and w is not None
    frame = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    times, cpu = [], []
    for k in range(runs + 10):
        t0, c0 = time.perf_counter(), time.thread_time()
        scorer.judge(frame)
        if k >= 10:
            times.append((time.perf_counter() - t0) * 1000.0)
            cpu.append((time.thread_time() - c0) * 1000.0)

    def q(values: list[float], p: int) -> float:
        return round(float(np.percentile(values, p)), 3)

    return {"p50_ms": q(times, 50), "p95_ms": q(times, 95), "cpu_p50_ms": q(cpu, 50), "cpu_p95_ms": q(cpu, 95),
            "load_average": round(os.getloadavg()[0], 2), "runs": runs, "variant": variant}  # fmt: skip


def measure_in_subprocess(model_dir: Path, variant: str = "onnx-int8", runs: int = 200) -> dict[str, Any]:
    """measure() in a fresh interpreter held to one thread (BLAS included)."""
    cmd = [sys.executable, "-m", "edge_agent.tasks.defect.latency", str(model_dir), "--variant", variant,
           "--runs", str(runs)]  # fmt: skip
    done = subprocess.run(cmd, env=dict(os.environ, **ONE_THREAD), capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path)
    p.add_argument("--variant", default="onnx-int8")
    p.add_argument("--runs", type=int, default=200)
    args = p.parse_args(argv)
    print(json.dumps(measure(args.model, args.variant, args.runs)))  # noqa: T201 - the one output line
    return 0


if __name__ == "__main__":
    sys.exit(main())
