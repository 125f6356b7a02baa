"""OpenVINO against onnxruntime's CPU provider on the shipped models: bare `runtime.run` latency, 1 thread.

Four backends behind the agent's own runtime interface (edge_agent.runtime.registry.load_model):
  ort-cpu        onnxruntime, CPUExecutionProvider          (kind: onnxruntime, providers: [cpu])
  openvino       the openvino package, f32                  (kind: openvino, device: CPU; the default)
  openvino-auto  the openvino package, its own precision    (precision: auto: bf16 on CPUs with AVX512-BF16)
  ort-ov-ep      onnxruntime-openvino's OpenVINO provider   (kind: onnxruntime, providers: [openvino])
onnxruntime-openvino replaces onnxruntime in a venv (both are the `onnxruntime` module), so that backend
runs in a second interpreter given with --ep-python. Each case is its own process (no thread pool of an
earlier case competes); rounds alternate the backends so drift on a shared machine hits all of them.

    nice -n 10 .venv/bin/python -m bench.openvino_vs_ort --ep-python /path/to/ov-venv/bin/python \\
        --out bench/results/openvino_vs_ort
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("ort-cpu", "openvino", "openvino-auto", "ort-ov-ep")


def runtime_config(backend: str, threads: int) -> Any:
    from edge_agent.config import OnnxRuntimeConfig, OpenVINOConfig

    if backend.startswith("openvino"):  # openvino: f32 as measured; openvino-auto: OpenVINO's pick (bf16 here)
        return OpenVINOConfig(kind="openvino", threads=threads, precision="auto" if backend.endswith("auto") else "f32")
    providers = ["openvino"] if backend == "ort-ov-ep" else ["cpu"]
    return OnnxRuntimeConfig(providers=providers, intra_op_threads=threads)


def measure(case: dict[str, Any]) -> dict[str, Any]:
    """Load one variant with one backend, warm it up, time `run` until the count or the time is reached."""
    from edge_agent.runtime.registry import load_model

    model = load_model(Path(case["model_dir"]), case["variant"], runtime_config(case["backend"], case["threads"]))
    if case["backend"] == "ort-ov-ep" and "OpenVINOExecutionProvider" not in model.runtime.description:
        raise SystemExit(f"ort-ov-ep: the OpenVINO provider is not in use ({model.runtime.description})")
    rng = np.random.default_rng(0)
    feeds = [rng.random([d or 1 for d in s.shape]).astype(s.dtype) for s in model.manifest.inputs]
    for _ in range(case["warmup"]):
        model.runtime.run(feeds)
    samples: list[float] = []
    deadline = time.perf_counter() + case["max_seconds"]
    while len(samples) < case["iterations"] and time.perf_counter() < deadline:
        start = time.perf_counter()
        model.runtime.run(feeds)
        samples.append((time.perf_counter() - start) * 1000)
    p50, p95 = np.percentile(samples, [50, 95])
    return {**case, "n": len(samples), "p50_ms": float(p50), "p95_ms": float(p95),
            "runtime": model.runtime.description}  # fmt: skip


def run_case(case: dict[str, Any], python: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(case["threads"])}
    cmd = [python, "-m", "bench.openvino_vs_ort", "--case", json.dumps(case)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False)
    if done.returncode != 0:
        return {**case, "error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def cases(models: list[Path], threads: int, iterations: int) -> list[dict[str, Any]]:
    from edge_agent.runtime.manifest import load_manifest

    found = []
    for directory in models:
        manifest = load_manifest(directory)
        for variant, entry in sorted(manifest.files.items()):
            if entry.format == "onnx":
                found.append({"model_dir": str(directory), "model": manifest.name, "variant": variant,
                              "precision": entry.precision, "threads": threads, "iterations": iterations,
                              "warmup": 20, "max_seconds": 15.0})  # fmt: skip
    return found


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model x variant x backend: median over rounds of the per-round p50 and p95, and their spread."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if "error" not in row:
            groups.setdefault((row["model"], row["variant"], row["backend"]), []).append(row)
    out = []
    for (model, variant, backend), items in sorted(groups.items()):
        p50s = [r["p50_ms"] for r in items]
        p95 = float(np.median([r["p95_ms"] for r in items]))
        out.append({"model": model, "variant": variant, "backend": backend, "rounds": len(items),
                    "p50_ms": float(np.median(p50s)), "p50_min_ms": min(p50s), "p50_max_ms": max(p50s),
                    "p95_ms": p95, "runtime": items[0]["runtime"]})  # fmt: skip
    return out


def markdown(summary: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"# OpenVINO vs onnxruntime CPU, {meta['threads']} thread, bare runtime.run", "",
             f"CPU: {meta['cpu']}; load average at start {meta['load_start']}, at end {meta['load_end']}; "
             f"{meta['rounds']} rounds, up to {meta['iterations']} runs per round; `{meta['command']}`", "",
             "| model | variant | backend | p50 ms (median of rounds) | p50 range | p95 ms | vs ort-cpu p50 |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    base = {(r["model"], r["variant"]): r["p50_ms"] for r in summary if r["backend"] == "ort-cpu"}
    for r in summary:
        ratio = base.get((r["model"], r["variant"]))
        rel = f"{r['p50_ms'] / ratio:.2f}x" if ratio else "-"
        lines.append(f"| {r['model']} | {r['variant']} | {r['backend']} | {r['p50_ms']:.3f} | "
                     f"{r['p50_min_ms']:.3f}-{r['p50_max_ms']:.3f} | {r['p95_ms']:.3f} | {rel} |")  # fmt: skip
    lines += ["", "Runtimes: " + "; ".join(sorted({f"{r['backend']} = {r['runtime']}" for r in summary})), ""]
    return "\n".join(lines)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    shipped = sorted(p.parent for p in (ROOT / "models").glob("*/manifest.yaml"))
    parser.add_argument("--models", type=Path, nargs="*", default=shipped)
    parser.add_argument("--ep-python", help="python of a venv with onnxruntime-openvino (skipped if unset)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "openvino_vs_ort")
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(measure(json.loads(args.case))))
        return 0
    pythons = {"ort-cpu": sys.executable, "openvino": sys.executable, "openvino-auto": sys.executable,
               "ort-ov-ep": args.ep_python}  # fmt: skip
    load_start = os.getloadavg()
    rows = []
    for round_no in range(args.rounds):
        for case in cases(args.models, args.threads, args.iterations):
            order = BACKENDS if round_no % 2 == 0 else tuple(reversed(BACKENDS))
            rows += [{**run_case({**case, "backend": b}, pythons[b]), "round": round_no} for b in order if pythons[b]]
    command = "python -m bench.openvino_vs_ort " + " ".join(sys.argv[1:] if argv is None else argv)
    meta = {"cpu": cpu_name(), "threads": args.threads, "rounds": args.rounds, "iterations": args.iterations,
            "load_start": [round(x, 2) for x in load_start], "load_end": [round(x, 2) for x in os.getloadavg()],
            "command": command}  # fmt: skip
    summary = summarise(rows)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "summary": summary, "rows": rows}, indent=1))
    args.out.with_suffix(".md").write_text(markdown(summary, meta))
    print(markdown(summary, meta))
    errors = [r for r in rows if "error" in r]
    for r in errors:
        print(f"error: {r['model']} {r['variant']} {r['backend']}: {r['error']}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
