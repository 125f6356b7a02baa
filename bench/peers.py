"""Optional peer comparison: the same ONNX detector through Ultralytics' `predict()`, when it is installed.

Never installs anything and never affects the verdicts. Runs in its own process because Ultralytics
imports torch, whose thread pool would slow down everything else in the process (FIELD_NOTES).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

NOTE = ("The same ONNX file through Ultralytics' predict() (its own letterbox, NMS and result objects) on the same "
        "frames, one at a time, 1 thread on our side; Ultralytics picks its own threads.")  # fmt: skip


def compare(models: list[dict[str, Any]], settings: Any) -> dict[str, Any]:
    if importlib.util.find_spec("ultralytics") is None:
        return {"status": "skipped", "note": "Ultralytics is not installed in this environment (not installed by the "
                "benchmark on purpose); pip install ultralytics to add the comparison", "results": []}  # fmt: skip
    results = []
    for model in models:
        if model.get("task") != "shelf":
            continue
        for case in model["cases"]:
            if case["format"] != "onnx" or case["threads"] != 1 or case.get("status") != "ok":
                continue
            row = _run_peer(model, case["variant"], settings)
            row.update(ours_p50_ms=case["e2e"]["p50_ms"], ours_p95_ms=case["e2e"]["p95_ms"])
            results.append(row)
    if not results:
        return {"status": "skipped", "note": "no ONNX detector ran in this run", "results": []}
    return {"status": "ok", "note": NOTE, "results": results}


def _run_peer(model: dict[str, Any], variant: str, settings: Any) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.peers", "--model", model["path"], "--variant", variant,
           "--iterations", str(settings.iterations), "--warmup", str(settings.warmup)]  # fmt: skip
    root = Path(__file__).resolve().parents[1]
    row: dict[str, Any] = {"model": model["name"], "variant": variant, "p50_ms": None, "p95_ms": None}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=root, check=False)
        row.update(json.loads(done.stdout.strip().splitlines()[-1]))
    except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as exc:
        row["error"] = f"Ultralytics run failed: {exc}"
    return row


def _measure(model_dir: Path, variant: str, iterations: int, warmup: int) -> dict[str, Any]:
    from ultralytics import YOLO  # type: ignore[import-not-found,unused-ignore]

    from bench.workload import build_workload
    from edge_agent.runtime.manifest import load_manifest

    manifest = load_manifest(model_dir)
    workload = build_workload(manifest, 8, 0)
    size = int(manifest.inputs[0].shape[-1] or 640)
    detector = YOLO(str(model_dir / manifest.files[variant].path), task="detect")
    times = []
    for i in range(warmup + iterations):
        t0 = time.perf_counter()
        frame = workload.source(i).data  # the JPEG decode is in our end-to-end figure too
        detector.predict(frame, imgsz=size, verbose=False)
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000.0)
    arr = np.asarray(times)
    return {"p50_ms": round(float(np.percentile(arr, 50)), 3), "p95_ms": round(float(np.percentile(arr, 95)), 3),
            "iterations": len(times)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--variant", required=True)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    args = p.parse_args(argv)
    try:
        out = _measure(args.model, args.variant, args.iterations, args.warmup)
    except Exception as exc:  # noqa: BLE001 - a third-party package's failure is reported, never raised
        out = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
