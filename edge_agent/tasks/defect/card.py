"""MODEL_CARD.md of a fitted defect model, written from the measured figures in its manifest."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from edge_agent.runtime.manifest import Manifest

CARD_NAME = "MODEL_CARD.md"


def _variant_table(variants: dict[str, dict[str, Any]]) -> list[str]:
    columns = sorted({k for v in variants.values() for k in v})
    lines = ["| variant | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for key, entry in variants.items():
        lines.append(f"| {key} | " + " | ".join(str(entry.get(c, "")) for c in columns) + " |")
    return lines


def card_text(manifest: Manifest, command: str, good_dir: Path, note: str, cpus: int) -> str:
    m, spec = manifest.metrics, manifest.inputs[0]
    train = manifest.params.get("train", {})
    lines = [
        f"# {manifest.name} {manifest.version}",
        "",
        "Anomaly model for product defect detection, fitted from images of good parts only.",
        "",
        "## What it is",
        "",
        f"- Input {spec.shape[3]}x{spec.shape[2]} {spec.color}, NCHW, scale 1/255, mean {spec.mean}, std {spec.std};"
        f" region of interest {manifest.params.get('roi') or 'whole frame'}.",
        f"- Outputs: `anomaly_map` (1/{manifest.params.get('map_stride')} of the input, 0..1 per cell) and `score`"
        " (maximum of the 3x3-averaged map). An item fails when score >= threshold.",
        "- A small fully convolutional network (7 conv blocks, a feature-pyramid skip) trained from scratch by"
        " segmenting synthetic defects (scratches, stains, dents, pasted patches, wiped texture, foreign texture)"
        " drawn on random crops of the good images; no pretrained weights, no real defects in training.",
        f"- Trained on {train.get('images')} good images from `{good_dir.name}/` ({m.get('holdout_good')} more held"
        f" out), {train.get('steps')} steps of {train.get('batch')} crops of {train.get('crop')} px, seed"
        f" {train.get('seed')}.",
        f"- Threshold {manifest.thresholds['score']}: {m.get('threshold_method')}.",
        "",
        "## Measured figures (held-out images of this fit)",
        "",
        *_variant_table(m.get("variants", {})),
        "",
        f"Latency per item (preprocess + int8 ONNX + decision, 1 thread, {platform.machine()}, {cpus} CPU(s)):"
        f" p50 {m.get('latency_p50_ms')} ms, p95 {m.get('latency_p95_ms')} ms.",
        "",
        "Reproduce:",
        "",
        "```",
        command,
        "```",
        "",
        "## Where it fails",
        "",
        "- Defects unlike anything drawn in training (very large, low-contrast or global changes such as a wrong"
        " colour of the whole part) may score low; check with real defect photos (`--defects`).",
        "- Normal variation missing from the good images (new lighting, a new fixture position) raises false"
        " rejects: refit with images that show it.",
        "- Few held-out good images make the threshold uncertain; the false-reject rate on the line is the figure"
        " to watch (defect rate per shift in the metrics).",
    ]
    if note:
        lines += ["", "## Notes", "", note]
    return "\n".join(lines) + "\n"


def write_card(model_dir: Path, manifest: Manifest, command: str, good_dir: Path, note: str, cpus: int) -> Path:
    path = model_dir / CARD_NAME
    path.write_text(card_text(manifest, command, good_dir, note, cpus), encoding="utf-8")
    return path
