"""The patch-feature fit: cut the backbone, extract features, pick memory banks, set thresholds by cross-validation.

No gradient training: each good image goes once through each backbone file (fp32 ONNX, int8 ONNX, int8
TFLite: every variant gets its own bank and threshold, since int8 features differ slightly from fp32),
the banks are greedy coresets of the patches, every good image's distance map is taken against the
bank of the fold that left it out, those maps give the per-cell statistics that turn a distance map
into a z map (edge_agent.tasks.defect.patches), and the threshold comes from out-of-fold z scores
(edge_agent.tasks.defect.thresholds): each fold judged with cell statistics from the other folds only.
Needs onnx and tflite2onnx (extra `fit`), never torch or TensorFlow.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.config import LiteRTConfig, OnnxRuntimeConfig
from edge_agent.runtime.backbone import INPUT_NAME, onnx_cut, tflite_cut
from edge_agent.runtime.base import Runtime
from edge_agent.runtime.manifest import ModelFile, sha256_file
from edge_agent.tasks.defect import calibrate, coreset
from edge_agent.tasks.defect.geometry import Geometry
from edge_agent.tasks.defect.patches import _box3, cell_stats, normalise, patch_map
from edge_agent.tasks.defect.thresholds import ThresholdChoice, choose, fold_ids

VARIANTS = {
    "onnx-int8": ("backbone_int8.onnx", "onnx", "int8"),
    "onnx-fp32": ("backbone_fp32.onnx", "onnx", "fp32"),
    "tflite-int8": ("backbone_int8.tflite", "tflite", "int8"),
}
TAPS = ["features_s8", "features_s16"]
CALIBRATION_IMAGES = 96  # int8 ranges from 96 good images: 32 cost 0.01-0.03 image AUROC on KolektorSDD and ELPV
Bar = Callable[[int, str], Any]  # (total, description) -> a tqdm-like object with update() and close()


@dataclass(frozen=True)
class PatchSettings:
    bank_size: int = 2048
    folds: int = 5
    max_false_reject: float = 0.01
    seed: int = 0
    threads: int = 2


@dataclass
class VariantFit:
    """What one backbone file gave: its bank, out-of-fold good scores, defect scores and threshold."""

    bank: np.ndarray
    cells: np.ndarray  # 2 x h x w per-cell mean and spread of out-of-fold good distances
    good_oof: np.ndarray
    defect_scores: np.ndarray | None
    choice: ThresholdChoice
    figures: dict[str, Any] = field(default_factory=dict)


def write_backbones(work: Path, geometry: Geometry, calibration: np.ndarray) -> dict[str, Path]:
    """The three backbone files, cut at TAPS for this input size and channel count."""
    import onnx

    from edge_agent.runtime.quantize import quantize_onnx

    w, h = geometry.size
    paths = {key: work / name for key, (name, _f, _p) in VARIANTS.items()}
    onnx.save(onnx_cut(TAPS, h, w, geometry.channels), str(paths["onnx-fp32"]))
    samples = [calibration[i : i + 1].astype(np.float32) for i in range(len(calibration))]
    quantize_onnx(paths["onnx-fp32"], paths["onnx-int8"], samples, INPUT_NAME)
    paths["tflite-int8"].write_bytes(tflite_cut(TAPS, h, w, geometry.channels))
    return paths


def open_runtime(path: Path, key: str, threads: int) -> Runtime:
    """The daemon's own backend for a backbone file (the same code that will run it on the device)."""
    _name, fmt, precision = VARIANTS[key]
    entry = ModelFile(path=path.name, sha256=sha256_file(path), format=fmt, precision=precision)
    if fmt == "onnx":
        from edge_agent.runtime.onnx import OnnxRuntime

        return OnnxRuntime(path, entry, OnnxRuntimeConfig(intra_op_threads=threads))
    from edge_agent.runtime.litert import LiteRTRuntime

    return LiteRTRuntime(path, entry, LiteRTConfig(kind="litert", threads=threads))


def extract(runtime: Runtime, x: np.ndarray, bar: Bar, label: str) -> list[list[np.ndarray]]:
    """Backbone outputs of every input, one image per call as on the device."""
    progress = bar(len(x), label)
    maps = []
    for item in x:
        maps.append([m.astype(np.float32) for m in runtime.run([item[None].astype(np.float32)])])
        progress.update(1)
    progress.close()
    return maps


def layer_weights(maps: list[list[np.ndarray]]) -> np.ndarray:
    """Per-layer scale so each layer's pooled patch vectors have unit mean squared length (both layers count)."""
    sample = maps[: min(len(maps), 64)]
    energy = [float(np.mean([(_box3(m[k][0]) ** 2).sum(axis=-1).mean() for m in sample])) for k in range(len(TAPS))]
    return np.asarray([1.0 / np.sqrt(max(e, 1e-12)) for e in energy], np.float32)


def patches_of(maps: list[list[np.ndarray]], weights: np.ndarray) -> np.ndarray:
    """N x P x D patch features (float32)."""
    from edge_agent.tasks.defect.patches import embed

    return np.stack([embed(m, weights) for m in maps])


@dataclass(frozen=True)
class BankPlan:
    """Which patches (flat indices into N x P) form the bank of each fold and of the final model."""

    folds: np.ndarray
    fold_banks: list[np.ndarray]
    final_bank: np.ndarray


def plan_banks(reference: np.ndarray, settings: PatchSettings, bar: Bar) -> BankPlan:
    """Coresets on the reference variant's patches; the other variants reuse the same patch choice."""
    rng = np.random.default_rng(settings.seed)
    n, p, d = reference.shape
    flat = reference.reshape(n * p, d)
    folds = fold_ids(n, min(settings.folds, n), rng)
    owners = np.repeat(np.arange(n), p)
    progress = bar(len(np.unique(folds)) + 1, "memory banks")

    def select(allowed: np.ndarray) -> np.ndarray:
        pool = np.flatnonzero(allowed[owners])
        pool = pool[coreset.candidates(len(pool), rng)]
        chosen = pool[coreset.greedy_coreset(flat[pool], settings.bank_size, rng)]
        progress.update(1)
        return np.sort(chosen)

    fold_banks = [select(folds != f) for f in np.unique(folds)]
    final = select(np.ones(n, bool))
    progress.close()
    return BankPlan(folds, fold_banks, final)


def distance_maps(patches: np.ndarray, bank: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """N x h x w smoothed distance maps against one bank."""
    sq = np.einsum("ij,ij->i", bank, bank)
    return np.stack([patch_map(item, bank, sq, *grid) for item in patches])


def image_scores(maps: np.ndarray) -> np.ndarray:
    return np.asarray(maps.reshape(len(maps), -1).max(axis=1), np.float64)


def out_of_fold(patches: np.ndarray, plan: BankPlan, grid: tuple[int, int]) -> np.ndarray:
    """Each good image's distance map against the bank of the fold that left it out."""
    n, p, d = patches.shape
    flat = patches.reshape(n * p, d)
    maps = np.empty((n, *grid), np.float32)
    for f, bank_idx in zip(np.unique(plan.folds), plan.fold_banks):
        held = plan.folds == f
        maps[held] = distance_maps(patches[held], flat[bank_idx], grid)
    return maps


def nested_scores(maps: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Out-of-fold z scores: each fold's maps judged with cell statistics from the other folds' maps only."""
    scores = np.empty(len(maps))
    for f in np.unique(folds):
        held = folds == f
        scores[held] = image_scores(normalise(maps[held], cell_stats(maps[~held])))
    return scores


def fit_variant(
    good: np.ndarray, defects: np.ndarray | None, plan: BankPlan, grid: tuple[int, int], settings: PatchSettings
) -> VariantFit:  # fmt: skip
    n, p, d = good.shape
    bank = np.ascontiguousarray(good.reshape(n * p, d)[plan.final_bank])
    maps = out_of_fold(good, plan, grid)
    cells = cell_stats(maps)
    oof = nested_scores(maps, plan.folds)
    bad = image_scores(normalise(distance_maps(defects, bank, grid), cells)) if defects is not None else None
    choice = choose(oof, plan.folds, bad, settings.max_false_reject)
    figures: dict[str, Any] = {"threshold": round(choice.threshold, 6),
                               "false_reject_cv": choice.false_rejects.as_dict()}  # fmt: skip
    if bad is not None:
        labels = np.r_[np.zeros(n), np.ones(len(bad))]
        assert choice.misses is not None
        figures |= {"defect_auroc_oof": round(calibrate.auroc(np.r_[oof, bad], labels), 4),
                    "miss_known_defects": choice.misses.as_dict()}  # fmt: skip
    return VariantFit(bank, cells, oof, bad, choice, figures)


def fit_all(
    good_x: np.ndarray, defect_x: np.ndarray | None, geometry: Geometry, settings: PatchSettings, bar: Bar,
    work: Path | None = None,
) -> tuple[dict[str, Path], np.ndarray, dict[str, VariantFit], tempfile.TemporaryDirectory[str] | None]:  # fmt: skip
    """Backbone files, layer weights and one VariantFit per variant (the reference variant plans the banks)."""
    holder = None
    if work is None:
        holder = tempfile.TemporaryDirectory()
        work = Path(holder.name)
    rng = np.random.default_rng(settings.seed + 1)
    calib = good_x[rng.choice(len(good_x), min(CALIBRATION_IMAGES, len(good_x)), replace=False)]
    paths = write_backbones(work, geometry, calib)
    weights: np.ndarray | None = None
    plan: BankPlan | None = None
    fits: dict[str, VariantFit] = {}
    for key in VARIANTS:
        runtime = open_runtime(paths[key], key, settings.threads)
        maps = extract(runtime, good_x, bar, f"features {key}")
        bad_maps = extract(runtime, defect_x, bar, f"defects {key}") if defect_x is not None else None
        runtime.close()
        weights = layer_weights(maps) if weights is None else weights
        good = patches_of(maps, weights)
        grid = maps[0][0].shape[1], maps[0][0].shape[2]
        plan = plan_banks(good, settings, bar) if plan is None else plan
        fits[key] = fit_variant(good, patches_of(bad_maps, weights) if bad_maps else None, plan, grid, settings)
    assert weights is not None
    return paths, weights, fits, holder
