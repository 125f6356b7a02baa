"""Per-item latency of the defect task: preprocess + model + decode + decision (+ snapshot on fails).

    OPENBLAS_NUM_THREADS=1 python -m bench.defect_latency --model models/defect-synthetic

Frames are resized to the model's input size first (the camera/ROI delivers that size), then every
variant in the manifest judges the same items one at a time with one thread; the bare runtime is
timed on the same inputs in the same run, so the task's overhead is visible as a ratio (for a patch model
the overhead includes the nearest-neighbour scoring; OPENBLAS_NUM_THREADS=1 holds that product to 1 thread).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_agent.config import LiteRTConfig, OnnxRuntimeConfig
from edge_agent.runtime.manifest import load_manifest
from edge_agent.runtime.registry import load_model
from edge_agent.tasks.base import Item, TaskContext
from edge_agent.tasks.defect.config import DefectTaskConfig
from edge_agent.tasks.defect.task import DefectTask

REPO = Path(__file__).resolve().parents[1]
GOAL_MS = 25.0


def percentiles(times: list[float]) -> dict[str, float]:
    a = np.array(times)
    return {f"p{q}_ms": round(float(np.percentile(a, q)), 3) for q in (50, 95, 99)}


def bench_variant(model_dir: Path, variant: str, frames: list[np.ndarray], items: int, threads: int) -> dict[str, Any]:
    fmt = load_manifest(model_dir).files[variant].format
    runtime = (
        LiteRTConfig(kind="litert", threads=threads) if fmt == "tflite" else OnnxRuntimeConfig(intra_op_threads=threads)
    )
    model = load_model(model_dir, variant, runtime)
    task = DefectTask(DefectTaskConfig(kind="defect"), model, TaskContext("bench", "site", "device"))
    total, bare, cpu, fails = [], [], [], 0
    for k in range(items + 20):
        item = Item(frames[k % len(frames)], time.time(), "bench", k)
        t0, c0 = time.perf_counter(), time.thread_time()
        inputs = task.preprocess([item])
        outputs = task.run(inputs)
        out = task.logic(task.decode(outputs, [item])[0], item)
        t1, c1 = time.perf_counter(), time.thread_time()
        model.runtime.run(inputs)
        t2 = time.perf_counter()
        if k >= 20:  # warm-up excluded
            total.append((t1 - t0) * 1000)
            cpu.append((c1 - c0) * 1000)  # 1 thread: the item's own CPU time, without waiting for a busy core
            bare.append((t2 - t1) * 1000)
            fails += int(out.data is not None and not out.data.passed)
    model.runtime.close()
    result: dict[str, Any] = {"items": items, "failed_items": fails, **percentiles(total)}
    result["cpu_p50_ms"], result["cpu_p95_ms"] = percentiles(cpu)["p50_ms"], percentiles(cpu)["p95_ms"]
    result["model_only_p50_ms"] = percentiles(bare)["p50_ms"]
    result["task_over_model_p50"] = round(result["p50_ms"] / max(result["model_only_p50_ms"], 1e-6), 2)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=REPO / "models" / "defect-synthetic")
    p.add_argument("--frames", type=Path, default=REPO / "examples" / "data" / "defect_demo")
    p.add_argument("--items", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=REPO / "artifacts" / "defect_latency.json")
    args = p.parse_args(argv)
    manifest = load_manifest(args.model)
    spec = manifest.inputs[0]
    h, w = (spec.shape[1], spec.shape[2]) if spec.layout == "NHWC" else (spec.shape[2], spec.shape[3])
    h, w = h or 1, w or 1
    paths = sorted(args.frames.glob("*.jpg")) + sorted(args.frames.glob("*.png"))
    if not paths:
        print(f"error: no images in {args.frames}", file=sys.stderr)
        return 2
    frames = [cv2.resize(cv2.imread(str(f), cv2.IMREAD_COLOR), (w, h), interpolation=cv2.INTER_AREA) for f in paths]
    table = {v: bench_variant(args.model, v, frames, args.items, args.threads) for v in manifest.files}
    cols = list(next(iter(table.values())))
    load = os.getloadavg()[0]
    print(f"{manifest.name} {manifest.version}, input {w}x{h}, {args.threads} thread(s), {len(frames)} frames,"
          f" load average {load:.1f}")  # fmt: skip
    print("| variant | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    for key, row in table.items():
        print(f"| {key} | " + " | ".join(str(row[c]) for c in cols) + " |")
    p95 = table[manifest.default_variant]["p95_ms"]
    print(f"goal: p95 < {GOAL_MS} ms per item for {manifest.default_variant}: {'met' if p95 < GOAL_MS else 'NOT met'}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"model": manifest.name, "input": [w, h], "threads": args.threads,
                                     "variants": table}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
