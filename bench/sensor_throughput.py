"""Throughput of the sensor anomaly task on one core: windows per second batched, and per-window latency unbatched.

    python -m bench.sensor_throughput [--model models/sensor-anomaly] [--json out.json]

Batched: preprocess + run + decode on batches of queued windows (what the pipeline does when windows
pile up), and the same with the per-window task logic added. Unbatched: all four stages for one
window at a time, p50/p95/p99 over many windows. The process is pinned to one CPU and every runtime
gets one thread. Windows come from the shipped demo recording. The task runs as on a device: the
likelihood calibration on, and adaptation on (--adapt 1d) unless --adapt off.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.fingerprint import cpu_info

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("onnx-int8", "tflite-int8", "onnx-fp32")


def _pin_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to CPU {core}"
    return "not pinned (no sched_setaffinity)"


def _items(model_dir: Path, count: int) -> list[Any]:
    from edge_agent.runtime.manifest import load_manifest
    from edge_agent.tasks.base import Item
    from edge_agent.tasks.sensor.dataio import read_sensor_csv
    from edge_agent.tasks.sensor.fitting import sliding
    from edge_agent.tasks.sensor.scoring import parse_params

    params = parse_params(load_manifest(model_dir).params)
    table = read_sensor_csv(ROOT / "examples" / "data" / "machine_demo.csv", list(params.channels))
    windows = sliding(table.values.astype(np.float32), params.size)
    picks = np.arange(count) % len(windows)
    return [
        Item(
            np.array(windows[i]),
            float(table.timestamps[i]),
            "bench",
            int(k),
            {"window_end": float(table.timestamps[i])},
        )
        for k, i in enumerate(picks)
    ]


def _batched(task: Any, items: list[Any], batch: int, with_logic: bool, repeats: int) -> list[float]:
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for first in range(0, len(items), batch):
            chunk = items[first : first + batch]
            decoded = task.decode(task.run(task.preprocess(chunk)), chunk)
            if with_logic:
                for value, item in zip(decoded, chunk):
                    task.logic(value, item)
        rates.append(len(items) / (time.perf_counter() - start))
    return rates


def _unbatched(task: Any, items: list[Any]) -> np.ndarray:
    times = np.empty(len(items))
    for k, item in enumerate(items):
        start = time.perf_counter()
        value = task.decode(task.run(task.preprocess([item])), [item])[0]
        task.logic(value, item)
        times[k] = time.perf_counter() - start
    return times * 1000.0


def measure(model_dir: Path, variant: str, batch: int, windows: int, adapt: str | None = None) -> dict[str, Any]:
    from edge_agent.tasks.sensor.config import SensorAnomalyTaskConfig
    from edge_agent.tasks.sensor.replay import make_task

    config = SensorAnomalyTaskConfig(kind="sensor_anomaly", batch_size=batch, adapt=adapt)
    task = make_task(model_dir, variant, config)
    items = _items(model_dir, windows)
    _batched(task, items[: batch * 4], batch, False, 1)  # warm-up: allocations, XNNPACK packing
    latencies = _unbatched(task, items[: min(len(items), 5000)])
    plain = _batched(task, items, batch, False, 7)
    full = _batched(task, items, batch, True, 5)
    return {
        "batch": batch,
        "batched_windows_per_s": round(statistics.median(plain), 1),
        "batched_windows_per_s_best": round(max(plain), 1),
        "batched_with_logic_windows_per_s": round(statistics.median(full), 1),
        "batched_with_logic_windows_per_s_best": round(max(full), 1),
        "unbatched_p50_ms": round(float(np.percentile(latencies, 50)), 4),
        "unbatched_p95_ms": round(float(np.percentile(latencies, 95)), 4),
        "unbatched_p99_ms": round(float(np.percentile(latencies, 99)), 4),
        "unbatched_windows_per_s": round(1000.0 / float(np.mean(latencies)), 1),
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.sensor_throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "sensor-anomaly")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--windows", type=int, default=50_000, help="windows per batched pass")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--adapt", default="1d", help="adaptation time constant ('off' to measure without)")
    args = parser.parse_args(argv)
    adapt = None if args.adapt == "off" else args.adapt
    pinning = _pin_one_core()
    results = {v: measure(args.model, v, args.batch, args.windows, adapt) for v in args.variants.split(",")}
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    report = {
        "device": f"{cpu_info()['model']}, 1 thread, {pinning}",
        "load_average_1m": round(load[0], 2),
        "python": platform.python_version(),
        "command": "python -m bench.sensor_throughput " + " ".join(argv),
        "variants": results,
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
