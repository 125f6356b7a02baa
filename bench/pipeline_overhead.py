"""Pipeline overhead: per-stage p50/p95 of a real pipeline vs bare `runtime.run` on the same model and input.

    python -m bench.pipeline_overhead [--model mobilenetv2 | MODEL_DIR] [--iterations 300] [--json out.json]

The default model is a random-weight MobileNetV2 1.0 at 224x224 (about 300M MACs), the usual
reference for a 224x224 model on edge CPUs, built once into artifacts/bench-models/ by bench/mobilenet.py
(needs `pip install -e '.[bench]'`). Any model folder works too, e.g. the much smaller tests/data/cnn224
(about 67M MACs, a sixth of the run time), on which the fixed per-frame costs weigh far more.

Both are measured in the same run, interleaved, so machine noise hits them alike. The pipeline
figure is everything the daemon does per frame after capture: preprocess (resize, colour, layout,
normalisation into the preallocated buffer), run, decode, task logic, message building and the
outbox commit.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from bench import mobilenet
from edge_agent.config import ClassifyTaskConfig, OnnxRuntimeConfig, OutboxConfig
from edge_agent.errors import EdgeAgentError
from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import Outbox
from edge_agent.pipeline import STAGES, MessageFactory, Pipeline
from edge_agent.runtime.manifest import load_manifest
from edge_agent.runtime.registry import load_model
from edge_agent.sinks import MqttSink
from edge_agent.sources.runner import Handover, SourceRunner
from edge_agent.tasks.base import Item, TaskContext
from edge_agent.tasks.classify import ClassifyTask

BUILT_MODEL = "mobilenetv2"


class _NoSource:
    name = "bench"
    kind = "bench"
    keep_latest = True


def percentiles(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values) * 1000.0
    return {
        "p50_ms": float(np.percentile(arr, 50)),
        "p95_ms": float(np.percentile(arr, 95)),
        "p99_ms": float(np.percentile(arr, 99)),
        "max_ms": float(arr.max()),
    }


def measure(model_dir: Path, variant: str, iterations: int, threads: int) -> dict[str, Any]:
    model = load_model(model_dir, variant, OnnxRuntimeConfig(intra_op_threads=threads))
    task = ClassifyTask(ClassifyTaskConfig(kind="classify"), model, TaskContext("bench", "lab", "bench"))
    metrics = AgentMetrics(CollectorRegistry())
    with tempfile.TemporaryDirectory() as tmp:
        outbox = Outbox(OutboxConfig(path=Path(tmp) / "outbox.db"), metrics)
        runner = SourceRunner(_NoSource(), Handover(1, True), metrics, None)  # type: ignore[arg-type]
        pipeline = Pipeline(
            "bench", task, runner, [MqttSink(outbox)], metrics, MessageFactory("lab", "bench", outbox.next_seq)
        )
        frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
        feed = task.preprocess([Item(frame, time.time(), "bench", 0)])
        feed = [f.copy() for f in feed]
        bare: list[float] = []
        full: list[float] = []
        stages: dict[str, list[float]] = {s: [] for s in (*STAGES, "publish")}
        for _ in range(20):
            model.runtime.run(feed)
            pipeline.process([Item(frame, time.time(), "bench", 0)])
        for i in range(iterations):
            start = time.perf_counter()
            model.runtime.run(feed)
            bare.append(time.perf_counter() - start)
            item = Item(frame, time.time(), "bench", i)
            start = time.perf_counter()
            pipeline.process([item])
            full.append(time.perf_counter() - start)
            for stage, values in stages.items():
                values.append(_last(metrics, stage))
        outbox.close()
    b, f = percentiles(bare), percentiles(full)
    processing = [sum(stages[s][i] for s in STAGES) for i in range(iterations)]
    proc = percentiles(processing)
    return {
        "model": model.manifest.name,
        "variant": variant,
        "threads": threads,
        "iterations": iterations,
        "bare_run": b,
        "pipeline": f,
        "stages": {s: percentiles(v) for s, v in stages.items()},
        "ratio_p50": f["p50_ms"] / b["p50_ms"],
        "overhead_p50_pct": 100 * (f["p50_ms"] / b["p50_ms"] - 1),
        "ratio_p95": f["p95_ms"] / b["p95_ms"],
        "processing": proc,
        "processing_ratio_p50": proc["p50_ms"] / b["p50_ms"],
    }


_previous: dict[str, float] = {}


def _last(metrics: AgentMetrics, stage: str) -> float:
    """The latest observation of a stage, from the histogram's running sum."""
    total = metrics.registry.get_sample_value("edge_stage_seconds_sum", {"pipeline": "bench", "stage": stage}) or 0.0
    value = total - _previous.get(stage, 0.0)
    _previous[stage] = total
    return value


def resolve_model(choice: str) -> Path:
    """`mobilenetv2` builds (or reuses) the reference model; anything else is a model folder."""
    return mobilenet.ensure() if choice == BUILT_MODEL else Path(choice)


def model_size(model_dir: Path) -> mobilenet.Size | None:
    """MACs and parameters of the folder's fp32 ONNX file, so a report says how big the model was."""
    manifest = load_manifest(model_dir)
    fp32 = [f.path for f in manifest.files.values() if f.format == "onnx" and f.precision == "fp32"]
    try:
        return mobilenet.graph_size(model_dir / fp32[0]) if fp32 else None
    except EdgeAgentError:  # no onnx package: the benchmark still runs, the report says the size is unknown
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=BUILT_MODEL, help=f"{BUILT_MODEL!r} (built on first use) or a model folder")
    parser.add_argument("--variants", default="onnx-int8,onnx-fp32")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        model_dir = resolve_model(args.model)
        size = model_size(model_dir)
        described = size.describe() if size else f"size unknown: needs an fp32 ONNX file and {mobilenet.INSTALL_HINT}"
        print(f"model {load_manifest(model_dir).name} ({described}) from {model_dir}")
        results = [run_variant(model_dir, variant, size, args) for variant in args.variants.split(",")]
    except EdgeAgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def run_variant(model_dir: Path, variant: str, size: mobilenet.Size | None, args: argparse.Namespace) -> dict[str, Any]:
    _previous.clear()
    r = measure(model_dir, variant, args.iterations, args.threads)
    r.update(model_dir=str(model_dir), macs=size and size.macs, params=size and size.params)
    print(
        f"{r['model']} {variant} threads={r['threads']}: bare run p50 {r['bare_run']['p50_ms']:.2f} ms "
        f"p95 {r['bare_run']['p95_ms']:.2f} ms | pipeline p50 {r['pipeline']['p50_ms']:.2f} ms "
        f"p95 {r['pipeline']['p95_ms']:.2f} ms | ratio p50 {r['ratio_p50']:.3f} "
        f"(overhead {r['overhead_p50_pct']:+.1f}%), p95 {r['ratio_p95']:.3f} | preprocess..logic p50 "
        f"{r['processing']['p50_ms']:.2f} ms, ratio {r['processing_ratio_p50']:.3f}"
    )
    for stage, p in r["stages"].items():
        print(f"    {stage:<11} p50 {p['p50_ms']:.3f} ms  p95 {p['p95_ms']:.3f} ms")
    return r


if __name__ == "__main__":
    raise SystemExit(main())
