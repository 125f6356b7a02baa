"""Patch-feature anomaly scoring (PatchCore-style), vectorised numpy shared by the fit and the daemon.

The backbone file returns NHWC feature maps at strides 8 and 16. Each map is averaged over 3 x 3
neighbours (a patch sees its surroundings), the stride-16 map is brought to the stride-8 grid, each
layer is scaled by a weight fixed at fit time (so both layers count alike), and every patch is compared
with its nearest neighbour in a bounded memory bank of good-part patches. The distance map, smoothed
over 3 x 3 cells, is then judged cell by cell against what good parts give at that cell: the fit scores
every good image out of fold and keeps, per cell, the mean and spread of those distances, so the map
is a z-score (a border or an edge that is always a little far from the bank no longer outranks a real
defect in the middle, and a cell that varies a lot among good parts needs more to count). The z map is
the anomaly map; its maximum is the image score.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_agent.errors import ModelError
from edge_agent.runtime.manifest import Manifest, sha256_file

BANK_FILE = "memory_bank_{variant}.npy"
CELL_FILE = "cell_stats_{variant}.npy"  # 2 x h8 x w8: per-cell mean and spread of out-of-fold good distances
DECODER = "patch_knn"


def _box3(fmap: np.ndarray) -> np.ndarray:
    """3 x 3 mean of an h x w x c float map, edge cells repeated (separable sums; any channel count)."""
    p = np.pad(fmap, ((1, 1), (1, 1), (0, 0)), mode="edge")
    rows = p[:-2] + p[1:-1] + p[2:]
    out: np.ndarray = (rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]) * np.float32(1.0 / 9.0)
    return out


def embed(maps: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """(h8 * w8) x D patch features from [1 x h8 x w8 x c8, 1 x h16 x w16 x c16] backbone outputs."""
    fine = maps[0][0].astype(np.float32, copy=False)
    h, w = fine.shape[:2]
    parts = [_box3(fine) * weights[0]]
    for k, fmap in enumerate(maps[1:], start=1):
        coarse = _box3(fmap[0].astype(np.float32, copy=False)) * weights[k]
        ry, rx = -(-h // coarse.shape[0]), -(-w // coarse.shape[1])
        parts.append(np.repeat(np.repeat(coarse, ry, axis=0), rx, axis=1)[:h, :w])
    return np.ascontiguousarray(np.concatenate(parts, axis=2).reshape(h * w, -1))


def nearest_distance(patches: np.ndarray, bank: np.ndarray, bank_sq: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distance of each patch to its nearest bank row (one matrix product, no Python loop)."""
    sq = bank_sq if bank_sq is not None else np.einsum("ij,ij->i", bank, bank)
    d2 = patches @ bank.T  # the one big product; the rest works in place on it
    d2 *= np.float32(-2.0)
    d2 += sq[None, :]
    nearest = d2.min(axis=1) + np.einsum("ij,ij->i", patches, patches)
    out: np.ndarray = np.sqrt(np.maximum(nearest, 0.0))
    return out


def smooth(distances: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.asarray(cv2.blur(distances.reshape(h, w).astype(np.float32), (3, 3), borderType=cv2.BORDER_REFLECT))


def patch_map(patches: np.ndarray, bank: np.ndarray, bank_sq: np.ndarray, h: int, w: int) -> np.ndarray:
    """The smoothed h x w distance map of one image's patches; its maximum is the image score."""
    return smooth(nearest_distance(patches, bank, bank_sq), h, w)


@dataclass
class PatchScorer:
    """Turns backbone outputs into (anomaly map 0..1, score): the `patch_knn` decoder of a defect model."""

    bank: np.ndarray
    weights: np.ndarray
    map_scale: float
    cells: np.ndarray | None = None  # 2 x h8 x w8 (mean, spread); None: raw distances (models fitted before it)

    def __post_init__(self) -> None:
        self.bank = np.ascontiguousarray(self.bank, dtype=np.float32)
        self._bank_sq = np.einsum("ij,ij->i", self.bank, self.bank)

    def raw_map(self, maps: list[np.ndarray]) -> np.ndarray:
        """The smoothed distance map, as a per-cell z-score when the fit gave cell statistics (h8 x w8)."""
        h, w = maps[0].shape[1:3]
        raw = patch_map(embed(maps, self.weights), self.bank, self._bank_sq, h, w)
        return raw if self.cells is None else normalise(raw, self.cells)

    def __call__(self, maps: list[np.ndarray]) -> tuple[np.ndarray, float]:
        raw = self.raw_map(maps)
        return np.clip(raw / self.map_scale, 0.0, 1.0), float(raw.max())


def normalise(raw: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """(distance - good mean) / good spread, cell by cell (maps of one shape, or a stack of them)."""
    out: np.ndarray = (raw - cells[0]) / cells[1]
    return out


def cell_stats(maps: np.ndarray, prior: float = 20.0) -> np.ndarray:
    """2 x h x w per-cell mean and spread of good distance maps (N x h x w), each pulled toward the whole
    map's value as if `prior` more images had shown it, so a few dozen images give no wild cell."""
    n = len(maps)
    mean, var = maps.mean(axis=0), maps.var(axis=0)
    mean = (n * mean + prior * float(maps.mean())) / (n + prior)
    var = (n * var + prior * float(maps.var())) / (n + prior)
    return np.stack([mean, np.sqrt(np.maximum(var, 1e-12))]).astype(np.float32)


def variant_params(manifest: Manifest, variant: str) -> dict[str, Any]:
    """The bank, threshold and map scale that the fit wrote for one backbone file."""
    entry = (manifest.params.get("variants") or {}).get(variant)
    if not isinstance(entry, dict):
        raise ModelError(f"model {manifest.name!r}: no memory bank for variant {variant!r}; fit the model again")
    return entry


def _verified(model_dir: Path, info: dict[str, Any], default: str, what: str) -> Path:
    path = model_dir / str(info.get("path", default))
    if not path.is_file():
        raise ModelError(f"{path}: the {what} listed in {model_dir / 'manifest.yaml'} is missing")
    if sha256_file(path) != info.get("sha256"):
        raise ModelError(f"{path}: sha256 does not match the manifest; restore the model folder or fit it again")
    return path


def verify_bank(model_dir: Path, manifest: Manifest, variant: str) -> tuple[Path, Path | None]:
    """The variant's memory bank file and its cell statistics file (None when the fit gave none), once each
    exists and its sha256 matches the manifest (`check` calls this too)."""
    entry = variant_params(manifest, variant)
    cells = entry.get("cell_stats")
    cells_path = _verified(model_dir, cells, CELL_FILE.format(variant=variant), "cell statistics") if cells else None
    bank = _verified(model_dir, entry.get("memory_bank") or {}, BANK_FILE.format(variant=variant), "memory bank")
    return bank, cells_path


def _load_npy(path: Path, what: str) -> np.ndarray:
    try:
        return np.asarray(np.load(path, allow_pickle=False), np.float32)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable .npy {what}: {exc}") from exc


def load_scorer(model_dir: Path, manifest: Manifest, variant: str) -> PatchScorer:
    """The variant's memory bank named in the manifest, checked against its sha256."""
    entry = variant_params(manifest, variant)
    path, cells_path = verify_bank(model_dir, manifest, variant)
    bank = _load_npy(path, "memory bank")
    weights = np.asarray(manifest.params.get("layer_weights", []), np.float32)
    if bank.ndim != 2 or len(weights) != len(manifest.outputs):
        raise ModelError(f"{path}: memory bank shape {bank.shape} does not fit the manifest's outputs")
    cells = None
    if cells_path is not None:
        cells = _load_npy(cells_path, "cell statistics")
        grid = tuple(manifest.outputs[0].shape[1:3])
        if cells.shape != (2, *grid) or not (cells[1] > 0).all():
            raise ModelError(f"{cells_path}: cell statistics of shape {cells.shape} do not fit the {grid} map")
    return PatchScorer(bank, weights, float(entry.get("map_scale", 1.0)), cells)
