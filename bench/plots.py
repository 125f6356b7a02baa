"""matplotlib plots of a result: latency distributions with the 100 ms line, accuracy vs latency per file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np


def latency_distribution(model: dict[str, Any], target_ms: float, path: Path) -> bool:
    """Box-and-whisker of every case's end-to-end samples beside its bare runs (log scale), target line."""
    ok = [c for c in model["cases"] if c.get("status") == "ok" and c.get("samples_ms", {}).get("e2e")]
    if not ok:
        return False
    labels = [f"{c['variant']}\n{c['threads']} thr" for c in ok]
    e2e = [np.asarray(c["samples_ms"]["e2e"]) for c in ok]
    bare = [np.asarray(c["samples_ms"]["bare"]) for c in ok]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(ok) + 2), 4.2))
    pos = np.arange(len(ok), dtype=float)
    fliers = {"markersize": 2, "alpha": 0.4}
    b1 = ax.boxplot(bare, positions=pos - 0.2, whis=(1, 99), widths=0.35, patch_artist=True, flierprops=fliers)
    b2 = ax.boxplot(e2e, positions=pos + 0.2, whis=(1, 99), widths=0.35, patch_artist=True, flierprops=fliers)
    for patch in b1["boxes"]:
        patch.set_facecolor("#c7d8ef")
    for patch in b2["boxes"]:
        patch.set_facecolor("#f3c69b")
    ax.axhline(target_ms, color="red", linestyle="--", linewidth=1.2)
    ax.text(len(ok) - 0.5, target_ms * 1.08, f"{target_ms:.0f} ms target", color="red", ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_xticks(pos)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("ms per item (log)")
    ax.set_title(f"{model['name']}: bare runtime.run (blue) vs end to end (orange); whiskers p1-p99", fontsize=9)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _points(model: dict[str, Any]) -> list[tuple[str, float, float, float]]:
    """(file, e2e p95 at 1 thread, accuracy value, ratio to fp32) for the files with both figures."""
    acc = model.get("accuracy") or {}
    if acc.get("status") != "ok":
        return []
    points = []
    for case in model["cases"]:
        v = acc["variants"].get(case["variant"])
        if case.get("status") == "ok" and case["threads"] == 1 and v and v.get("ratio_to_fp32") is not None:
            points.append((case["variant"], case["e2e"]["p95_ms"], v["value"], v["ratio_to_fp32"]))
    return points


MARKERS = {"onnx-fp32": "o", "onnx-int8": "s", "tflite-fp32": "^", "tflite-int8": "D"}


def accuracy_vs_latency(models: list[dict[str, Any]], target_ms: float, path: Path) -> bool:
    """One panel per model (each job has its own metric): each file's accuracy against its e2e p95."""
    panels = [(m, pts) for m in models if (pts := _points(m))]
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.0), squeeze=False)
    for ax, (model, points) in zip(axes[0], panels):
        acc = model["accuracy"]
        reference = acc["variants"][acc["reference"]]["value"] if acc.get("reference") else None
        for variant, p95, value, ratio in points:
            ax.scatter(p95, value, marker=MARKERS.get(variant, "x"), s=50, label=f"{variant} ({100 * ratio:.1f}%)")
        ax.axvline(target_ms, color="red", linestyle="--", linewidth=1.0)
        if reference:
            ax.axhline(0.95 * reference, color="red", linestyle=":", linewidth=1.0)
        ax.set_xscale("log")
        ax.set_xlim(min(p[1] for p in points) / 2, target_ms * 1.5)
        ax.set_xlabel("end-to-end p95 at 1 thread, ms (log)")
        ax.set_ylabel(acc["metric"])
        ax.set_title(f"{model['name']}", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, title="file (% of fp32)", title_fontsize=7)
    fig.suptitle("Accuracy vs latency per file; red: 100 ms target and 95% of fp32", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
