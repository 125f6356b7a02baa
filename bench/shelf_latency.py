"""End-to-end latency per frame of the shelf task: letterbox + detector + decode/NMS + zone counting.

    python -m bench.shelf_latency --model models/shelf-detector --frames 300

Frames are composed shelves (procedural products, or the held-out Grocery Store photos with --data)
resized to a camera resolution (1280x720 by default) and counted over a 4 x 3 grid of zones; each
variant runs them one at a time with one thread. The bare runtime is timed on the same inputs in the
same run, so the task's own overhead shows as a ratio. Goal: p95 under 25 ms for the int8 files.
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

from bench.fingerprint import cpu_info
from edge_agent.config import LiteRTConfig, OnnxRuntimeConfig
from edge_agent.runtime.manifest import load_manifest
from edge_agent.runtime.registry import load_model
from edge_agent.tasks.base import Item, TaskContext
from edge_agent.tasks.shelf.compose import Layout, ProductLibrary, ShelfComposer
from edge_agent.tasks.shelf.config import ShelfTaskConfig
from edge_agent.tasks.shelf.task import ShelfTask
from edge_agent.tasks.shelf.zones import grid_zones

REPO = Path(__file__).resolve().parents[1]
GOAL_MS = 25.0
WARMUP = 20


def percentiles(times: list[float]) -> dict[str, float]:
    a = np.array(times)
    return {f"p{q}_ms": round(float(np.percentile(a, q)), 3) for q in (50, 95, 99)}


def make_frames(data: Path | None, count: int, size: tuple[int, int]) -> list[np.ndarray]:
    library = ProductLibrary.from_grocery_store(data, split="heldout") if data else ProductLibrary.procedural(seed=3)
    composer = ShelfComposer(library, Layout(rows=(3, 6), occluder_p=0.0))
    rng = np.random.default_rng(11)
    return [cv2.resize(composer.compose(rng).image, size, interpolation=cv2.INTER_LINEAR) for _ in range(count)]


def bench_variant(model_dir: Path, variant: str, frames: list[np.ndarray], count: int, threads: int) -> dict[str, Any]:
    fmt = load_manifest(model_dir).files[variant].format
    runtime = (
        LiteRTConfig(kind="litert", threads=threads) if fmt == "tflite" else OnnxRuntimeConfig(intra_op_threads=threads)
    )
    model = load_model(model_dir, variant, runtime)
    h, w = frames[0].shape[:2]
    zones = grid_zones((0, 0, w, h), 4, 3, "z")
    config = ShelfTaskConfig.model_validate({"kind": "shelf", "zones": zones, "frame_size": (w, h)})
    task = ShelfTask(config, model, TaskContext("bench", "site", "device"))
    total, bare, post, detections = [], [], [], []
    for k in range(count + WARMUP):
        item = Item(frames[k % len(frames)], float(k), "bench", k)
        t0 = time.perf_counter()
        inputs = task.preprocess([item])
        outputs = task.run(inputs)
        t1 = time.perf_counter()
        decoded = task.decode(outputs, [item])[0]
        task.logic(decoded, item)
        t2 = time.perf_counter()
        model.runtime.run(inputs)
        t3 = time.perf_counter()
        if k >= WARMUP:
            total.append((t2 - t0) * 1000)
            post.append((t2 - t1) * 1000)
            bare.append((t3 - t2) * 1000)
            detections.append(len(decoded.detections))
    model.runtime.close()
    result: dict[str, Any] = {"variant": variant, "frames": count, **percentiles(total)}
    result["bare_p50_ms"] = percentiles(bare)["p50_ms"]
    result["bare_p95_ms"] = percentiles(bare)["p95_ms"]
    result["input"] = f"{task.preprocessor.width}x{task.preprocessor.height}"  # what the frames went in as
    result["decode_logic_p95_ms"] = percentiles(post)["p95_ms"]
    result["detections_mean"] = round(float(np.mean(detections)), 1)
    result["overhead_ratio_p50"] = round(result["p50_ms"] / max(result["bare_p50_ms"], 1e-6), 2)
    result["overhead_ratio_p95"] = round(result["p95_ms"] / max(result["bare_p95_ms"], 1e-6), 2)
    result["meets_goal"] = result["p95_ms"] < GOAL_MS
    return result


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"Shelf task end to end, {meta['frame_size']} frames letterboxed to the model input, 12 zones, "
        f"{meta['threads']} thread, {meta['cpu']}, load average {meta.get('load', 'n/a')} at the start.",
        "",
        "| variant | input | p50 ms | p95 ms | p99 ms | bare p50 ms | bare p95 ms | e2e/bare p95 | decode+logic p95 ms "
        f"| detections/frame | p95 < {GOAL_MS:g} ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['variant']} | {r['input']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['bare_p50_ms']:.2f} | {r['bare_p95_ms']:.2f} | {r['overhead_ratio_p95']:.2f} | "
            f"{r['decode_logic_p95_ms']:.2f} | {r['detections_mean']} | {'yes' if r['meets_goal'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "models" / "shelf-detector")
    parser.add_argument("--data", type=Path, help="Grocery Store Dataset folder; procedural products if omitted")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--distinct", type=int, default=30, help="distinct composed frames cycled through")
    parser.add_argument("--frame-size", default="1280x720")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", nargs="*")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench")
    args = parser.parse_args(argv)
    try:
        size = tuple(int(v) for v in args.frame_size.lower().split("x"))
        assert len(size) == 2 and min(size) > 0
    except (ValueError, AssertionError):
        print(f"error: --frame-size {args.frame_size!r}: expected WIDTHxHEIGHT", file=sys.stderr)
        return 2
    cv2.setNumThreads(1)
    frames = make_frames(args.data, args.distinct, (size[0], size[1]))
    variants = args.variants or [v for v, f in sorted(load_manifest(args.model).files.items()) if f.precision == "int8"]
    results = [bench_variant(args.model, v, frames, args.frames, args.threads) for v in variants]
    meta = {
        "frame_size": args.frame_size,
        "threads": args.threads,
        "cpu": cpu_info()["model"],
        "goal_ms": GOAL_MS,
        "load": round(os.getloadavg()[0], 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "shelf_latency.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    table = markdown(results, meta)
    (args.out / "shelf_latency.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
