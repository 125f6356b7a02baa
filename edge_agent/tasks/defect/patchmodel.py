"""Writing a fitted patch-feature model folder: backbone files, memory banks, manifest.yaml, MODEL_CARD.md."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.runtime.backbone import INPUT_NAME, MOBILENET_V2
from edge_agent.runtime.manifest import Manifest, ModelFile, TensorSpec, sha256_file, write_manifest
from edge_agent.tasks.defect.geometry import Geometry
from edge_agent.tasks.defect.patches import BANK_FILE, CELL_FILE, DECODER
from edge_agent.tasks.defect.patchfit import TAPS, VARIANTS, PatchSettings, VariantFit

DEFAULT_VARIANT = "onnx-int8"


@dataclass(frozen=True)
class FitRecord:
    """What the card says about how the model was fitted."""

    name: str
    version: str
    command: str
    good_dir: Path
    good_images: int
    known_defects: int
    skipped: int
    fit_seconds: float
    fit_cpu_seconds: float
    note: str = ""


def _outputs(geometry: Geometry) -> list[TensorSpec]:
    w, h = geometry.size
    specs = []
    for tap in TAPS:
        _name, stride, channels = MOBILENET_V2.taps[tap]
        specs.append(TensorSpec(name=tap, shape=[1, h // stride, w // stride, channels]))
    return specs


def remove_previous(out: Path) -> None:
    """With --force: the files the folder's old manifest listed go, so no stale model file is left beside the new."""
    from edge_agent.errors import EdgeAgentError
    from edge_agent.runtime.manifest import load_manifest

    try:
        old = load_manifest(out)
    except EdgeAgentError:
        return
    listed = [f.path for f in old.files.values()]
    for entry in (old.params.get("variants") or {}).values():
        listed += [str((entry.get(kind) or {}).get("path", "")) for kind in ("memory_bank", "cell_stats")]
    for name in listed:
        if name and "/" not in name and (out / name).is_file():
            (out / name).unlink()


def write_files(out: Path, paths: dict[str, Path], fits: dict[str, VariantFit]) -> dict[str, dict[str, Any]]:
    """Backbone files and one float32 bank per variant; returns the per-variant params."""
    out.mkdir(parents=True, exist_ok=True)
    remove_previous(out)
    variants: dict[str, dict[str, Any]] = {}
    for key, fit in fits.items():
        shutil.copyfile(paths[key], out / paths[key].name)
        bank = out / BANK_FILE.format(variant=key)
        np.save(bank, fit.bank.astype(np.float32), allow_pickle=False)
        cells = out / CELL_FILE.format(variant=key)
        np.save(cells, fit.cells.astype(np.float32), allow_pickle=False)
        t = fit.choice.threshold
        variants[key] = {"memory_bank": {"path": bank.name, "sha256": sha256_file(bank), "rows": len(fit.bank)},
                         "cell_stats": {"path": cells.name, "sha256": sha256_file(cells)},
                         "threshold": round(t, 6), "map_scale": round(2.0 * max(t, 1e-6), 6)}  # fmt: skip
    return variants


def build_manifest(
    record: FitRecord, geometry: Geometry, weights: np.ndarray, fits: dict[str, VariantFit],
    variants: dict[str, dict[str, Any]], settings: PatchSettings, out: Path,
) -> Manifest:  # fmt: skip
    files = {
        key: ModelFile(path=name, sha256=sha256_file(out / name), format=fmt, precision=prec)
        for key, (name, fmt, prec) in VARIANTS.items()
    }
    params: dict[str, Any] = geometry.params() | {
        "backbone": MOBILENET_V2.reference() | {"taps": TAPS},
        "layer_weights": [round(float(v), 8) for v in weights],
        "bank_size": settings.bank_size, "folds": settings.folds, "max_false_reject": settings.max_false_reject,
        "seed": settings.seed, "variants": variants,
    }  # fmt: skip
    metrics: dict[str, Any] = {
        "good_images": record.good_images, "known_defects": record.known_defects, "skipped_files": record.skipped,
        "threshold_method": fits[DEFAULT_VARIANT].choice.method,
        "fit_seconds": round(record.fit_seconds, 1), "fit_cpu_seconds": round(record.fit_cpu_seconds, 1),
        "variants": {key: fit.figures for key, fit in fits.items()},
    }  # fmt: skip
    return Manifest(
        name=record.name, version=record.version, task="defect",
        description="Patch-feature anomaly model (pretrained MobileNetV2 features, memory bank of good-part patches)",
        files=files, default_variant=DEFAULT_VARIANT, inputs=[geometry.spec(INPUT_NAME)], outputs=_outputs(geometry),
        decoder=DECODER, thresholds={"score": variants[DEFAULT_VARIANT]["threshold"]}, params=params, metrics=metrics,
    )  # fmt: skip


def write_model(
    out: Path, record: FitRecord, geometry: Geometry, paths: dict[str, Path], weights: np.ndarray,
    fits: dict[str, VariantFit], settings: PatchSettings,
) -> Manifest:  # fmt: skip
    variants = write_files(out, paths, fits)
    manifest = build_manifest(record, geometry, weights, fits, variants, settings, out)
    write_manifest(out, manifest)
    return manifest


def add_latency(out: Path, manifest: Manifest, latency: dict[str, float]) -> Manifest:
    """Record the measured per-item latency (measured on the written folder) in the manifest."""
    metrics = dict(manifest.metrics) | {"latency_p50_ms": latency["p50_ms"], "latency_p95_ms": latency["p95_ms"],
                                        "cpu_p50_ms": latency["cpu_p50_ms"], "cpu_p95_ms": latency["cpu_p95_ms"],
                                        "load_average": latency["load_average"]}  # fmt: skip
    updated = manifest.model_copy(update={"metrics": metrics})
    write_manifest(out, updated)
    return updated
