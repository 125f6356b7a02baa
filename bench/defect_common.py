"""Shared steps of the defect benchmarks on real data: fit with the CLI defaults, judge, report with intervals.

The fit runs `edge-agent fit defect` exactly as a user would (only --good and --out), on symlinks to the
data set's good images (nothing is copied); every variant is then judged one image at a time through the
daemon's runtimes. BLAS is held to one thread (set before numpy loads) so latency is per item, 1 thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def fit_defaults(good: list[Path], model: Path, note: str, extra: list[str] | None = None) -> dict[str, Any]:
    """`edge-agent fit defect --good DIR --out MODEL` under nice, with its wall time; returns the command."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "good")
        folder.mkdir()
        for path in good:
            folder.joinpath(path.name).symlink_to(path.resolve())
        cmd = [sys.executable, "-m", "edge_agent.cli", "fit", "defect", "--good", str(folder), "--out", str(model),
               "--force", "--card-note", note, *(extra or [])]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(REPO), OPENBLAS_NUM_THREADS="1")
        print("+", " ".join(cmd), file=sys.stderr)
        t0 = time.monotonic()
        subprocess.run(["nice", "-n", "10", *cmd], check=True, env=env)
        return {"command": "edge-agent fit defect --good GOOD --out MODEL", "wall_s": round(time.monotonic() - t0, 1)}


def rate(events: int, trials: int) -> dict[str, Any]:
    from edge_agent.tasks.defect.thresholds import Rate

    return Rate(events, trials).as_dict()


def judge_all(model: Path, frames: list[np.ndarray], labels: np.ndarray, masks: list[np.ndarray | None]) -> dict:
    """Per variant: image AUROC, pixel AUROC, false rejects and misses at the fitted threshold (with 95% CI)."""
    from edge_agent.runtime.manifest import load_manifest
    from edge_agent.tasks.defect import calibrate
    from edge_agent.tasks.defect.evaluate import run_variant

    manifest = load_manifest(model)
    table: dict[str, Any] = {}
    for variant in manifest.files:
        result = run_variant(model, variant, frames)
        scores, t = np.array(result.scores), float(result.threshold or manifest.thresholds["score"])
        fail = scores >= t
        entry: dict[str, Any] = {"image_auroc": round(calibrate.auroc(scores, labels), 4), "threshold": t,
                                 "false_rejects": rate(int((fail & ~labels).sum()), int((~labels).sum())),
                                 "misses": rate(int((~fail & labels).sum()), int(labels.sum())),
                                 "latency_p95_ms": round(float(np.percentile(result.times_ms, 95)), 3)}  # fmt: skip
        if any(m is not None for m in masks):
            from edge_agent.tasks.defect.evaluate import figures

            entry["pixel_auroc"] = figures(manifest, result, labels, masks)["pixel_auroc"]
        table[variant] = entry
    reference = table["onnx-fp32"]["image_auroc"]
    for entry in table.values():
        entry["auroc_vs_fp32"] = round(entry["image_auroc"] / reference, 4)
    return table


def markdown(table: dict[str, Any], title: str) -> str:
    def r(e: dict[str, Any]) -> str:
        return f"{e['rate']:.1%} ({e['events']}/{e['of']}, {e['ci95_low']:.1%}-{e['ci95_high']:.1%})"

    lines = [title, "", "| variant | image AUROC | pixel AUROC | false rejects | misses | AUROC vs fp32 |"
             " p95 ms (busy shared machine) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for k, e in table.items():
        lines.append(f"| {k} | {e['image_auroc']} | {e.get('pixel_auroc', 'n/a')} | {r(e['false_rejects'])} |"
                     f" {r(e['misses'])} | {e['auroc_vs_fp32']} | {e['latency_p95_ms']} |")  # fmt: skip
    return "\n".join(lines)


def save(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2), encoding="utf-8")
