"""MODEL_CARD.md of a patch-feature defect model, written from the figures in its manifest."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from edge_agent.runtime.manifest import Manifest
from edge_agent.tasks.defect.card import CARD_NAME
from edge_agent.tasks.defect.patchmodel import FitRecord


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _rate(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "unknown (no defects given)"
    return (f"{entry['rate']:.1%} ({entry['events']} of {entry['of']}; 95% interval {entry['ci95_low']:.1%} to"
            f" {entry['ci95_high']:.1%})")  # fmt: skip


def _variant_lines(variants: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| variant | threshold | expected false rejects (cross-validated) | misses on known defects | AUROC |",
             "|---|---|---|---|---|"]  # fmt: skip
    for key, v in variants.items():
        misses = _rate(v.get("miss_known_defects"))
        lines.append(f"| {key} | {v['threshold']} | {_rate(v['false_reject_cv'])} | {misses}"
                     f" | {v.get('defect_auroc_oof', 'n/a')} |")  # fmt: skip
    return lines


def _miss_lines(manifest: Manifest) -> list[str]:
    default = manifest.metrics["variants"][manifest.default_variant]
    if "miss_known_defects" not in default:
        return ["**Miss rate: unknown.** This model was fitted from good parts alone, so nothing here says how many"
                " defective parts it will pass. Fit again with `--defects DIR` (a handful of photos of known defects)"
                " to measure it, and watch the line's defect rate per shift."]  # fmt: skip
    known = manifest.metrics["known_defects"]
    return [f"Miss rate on the {known} known defects given: {_rate(default['miss_known_defects'])}. Those defects"
            " also set the threshold, so this figure is optimistic for defects unlike them."]  # fmt: skip


def _latency_line(m: dict[str, Any]) -> str:
    if "latency_p95_ms" not in m:
        return "Latency per item: not timed by this fit (`--latency-runs 0`)."
    return (f"Per item (preprocess + int8 ONNX backbone + nearest-neighbour scoring, 1 thread, {cpu_name()}, timed by"
            f" the fit): CPU time p50 {m.get('cpu_p50_ms')} ms, p95 {m.get('cpu_p95_ms')} ms; wall time p50"
            f" {m['latency_p50_ms']} ms, p95 {m['latency_p95_ms']} ms at a load average of {m.get('load_average')}"
            " (wall time includes waiting for the core while other work shares it).")  # fmt: skip


def card_text(manifest: Manifest, record: FitRecord) -> str:
    m, p, spec = manifest.metrics, manifest.params, manifest.inputs[0]
    default = m["variants"][manifest.default_variant]
    backbone = p["backbone"]
    lines = [
        f"# {manifest.name} {manifest.version}", "",
        "Defect detection for one product, fitted from photos of good parts (`edge-agent fit defect`).", "",
        "## What it is", "",
        f"- Input {spec.shape[2]}x{spec.shape[1]} {spec.color} (letterboxed, never stretched); region of interest"
        f" {p.get('roi') or 'whole frame'}; orientation {p.get('orientation')}.",
        f"- Features: the pretrained ImageNet MobileNetV2 (`{backbone['file']}`, sha256 `{backbone['sha256'][:16]}...`,"
        f" {backbone['licence']}, {backbone['source']}) cut at strides 8 and 16 ({', '.join(backbone['taps'])}),"
        " averaged over 3x3 neighbours.",
        f"- Memory bank: {p['bank_size']} good-part patches per variant chosen by greedy coreset from"
        f" {record.good_images} good images; a patch's anomaly is its distance to the nearest bank patch, 3x3-smoothed"
        " and taken as a z-score against the mean and spread that out-of-fold good images gave at the same cell;"
        " the image score is the maximum of that map. An item fails when score >= threshold.",
        f"- Fitted in {m['fit_seconds']} s ({m['fit_cpu_seconds']} CPU s) on {cpu_name()};"
        f" {record.skipped} mask/label/unreadable file(s) skipped.", "",
        "## What it will do", "",
        f"- Threshold {manifest.thresholds['score']} ({manifest.default_variant}): {m['threshold_method']}.",
        f"- Expected false-reject rate: {_rate(default['false_reject_cv'])}. Each good image was scored against a"
        f" bank built without it ({p['folds']}-fold) and judged at a threshold set without it; the shipped bank holds"
        " all images, so the rate on the line should be at or below this when the line looks like the photos.",
        f"- Asked for: at most {p['max_false_reject']:.1%} false rejects.", "",
        *_miss_lines(manifest), "",
        *_variant_lines(m["variants"]), "",
        _latency_line(m), "",
        "Reproduce:", "", "```", record.command, "```", "",
        "## Where it fails", "",
        "- Normal variation that the good photos do not show (new lighting, another fixture position, a new batch"
        " of material) scores high: refit with photos that show it.",
        "- Defects smaller than about one stride-8 cell of the model input (8 input pixels, more of the photo when"
        " it was reduced to fit the input) may be missed: crop with `--roi` or fit at a larger `--size`.",
    ]  # fmt: skip
    if record.note:
        lines += ["", "## Notes", "", record.note]
    return "\n".join(lines) + "\n"


def write_card(out: Path, manifest: Manifest, record: FitRecord) -> Path:
    path = out / CARD_NAME
    path.write_text(card_text(manifest, record), encoding="utf-8")
    return path
