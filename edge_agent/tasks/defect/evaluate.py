"""Accuracy of a fitted defect model folder on labelled frames, per variant, through the daemon's runtimes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_agent.config import LiteRTConfig, OnnxRuntimeConfig
from edge_agent.runtime.manifest import Manifest, load_manifest
from edge_agent.runtime.registry import load_model
from edge_agent.tasks.defect import calibrate
from edge_agent.tasks.defect.scoring import scorer_for


@dataclass
class VariantResult:
    scores: list[float] = field(default_factory=list)
    maps: list[np.ndarray] = field(default_factory=list)
    times_ms: list[float] = field(default_factory=list)
    threshold: float | None = None  # the loaded variant's fitted threshold


def run_variant(model_dir: Path, variant: str, frames: list[np.ndarray], threads: int = 1) -> VariantResult:
    """Score frames (BGR or grey) one at a time (preprocess + model + scoring), as the task does."""
    manifest = load_manifest(model_dir)
    runtime: OnnxRuntimeConfig | LiteRTConfig = (
        LiteRTConfig(kind="litert", threads=threads)
        if manifest.files[variant].format == "tflite"
        else OnnxRuntimeConfig(intra_op_threads=threads)
    )
    model = load_model(model_dir, variant, runtime)
    scorer = scorer_for(model)
    result = VariantResult(threshold=scorer.threshold)
    for frame in frames:
        t0 = time.perf_counter()
        amap, score = scorer.judge(frame)
        result.times_ms.append((time.perf_counter() - t0) * 1000)
        result.scores.append(score)
        result.maps.append(amap)
    model.runtime.close()
    return result


def figures(
    manifest: Manifest, result: VariantResult, labels: np.ndarray, masks: list[np.ndarray | None]
) -> dict[str, Any]:
    """Image AUROC, F1 / false rejects / misses at the manifest threshold, miss rate at 1% FRR, pixel AUROC.

    Each map is compared with its mask at the mask's size (None for good parts: all-good pixels).
    """
    scores = np.array(result.scores)
    truth = [m if m is not None else np.zeros(a.shape, np.uint8) for m, a in zip(masks, result.maps)]
    maps = [cv2.resize(a, (t.shape[1], t.shape[0]), interpolation=cv2.INTER_LINEAR) for a, t in zip(result.maps, truth)]
    threshold = result.threshold if result.threshold is not None else manifest.thresholds["score"]
    verdict = calibrate.verdicts(scores, labels, threshold)
    return {
        "image_auroc": round(calibrate.auroc(scores, labels), 4),
        "f1_at_threshold": round(verdict.f1, 4),
        "false_reject_rate_at_threshold": round(verdict.false_reject_rate, 4),
        "miss_rate_at_threshold": round(verdict.miss_rate, 4),
        "miss_rate_at_1pct_frr": round(calibrate.miss_rate_at_frr(scores, labels, 0.01), 4),
        "pixel_auroc": round(calibrate.pixel_auroc(maps, truth), 4),
        "latency_p50_ms": round(float(np.percentile(result.times_ms, 50)), 3),
        "latency_p95_ms": round(float(np.percentile(result.times_ms, 95)), 3),
    }


def evaluate(
    model_dir: Path, frames: list[np.ndarray], labels: np.ndarray, masks: list[np.ndarray | None]
) -> dict[str, dict[str, Any]]:
    """figures() for every variant in the manifest, plus each one's image AUROC relative to fp32."""
    manifest = load_manifest(model_dir)
    table = {v: figures(manifest, run_variant(model_dir, v, frames), labels, masks) for v in manifest.files}
    reference = table.get("onnx-fp32", next(iter(table.values())))["image_auroc"]
    for entry in table.values():
        entry["auroc_vs_fp32"] = round(entry["image_auroc"] / reference, 4) if reference else None
    return table


def markdown(table: dict[str, dict[str, Any]], title: str) -> str:
    cols = list(next(iter(table.values())))
    lines = [title, "", "| variant | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    lines += [f"| {k} | " + " | ".join(str(v[c]) for c in cols) + " |" for k, v in table.items()]
    return "\n".join(lines)
