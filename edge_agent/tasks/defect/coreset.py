"""Greedy coreset selection (PatchCore): a bounded memory bank that still covers every kind of good patch.

Farthest-point (k-center) selection picks, one at a time, the patch farthest from those already chosen,
so rare but normal patches (an edge, a hole, a print mark) stay in the bank while the thousands of
near-identical background patches collapse to a few. Distances during selection are measured on a
random projection (Johnson-Lindenstrauss), which keeps the ranking and makes each step cheap.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

PROJECTION_DIM = 32
MAX_CANDIDATES = 120_000  # patches considered: a random sample when there are more (bounds fit memory and time)


def project(patches: np.ndarray, rng: np.random.Generator, dim: int = PROJECTION_DIM) -> np.ndarray:
    if patches.shape[1] <= dim:
        return patches.astype(np.float32)
    matrix = rng.normal(size=(patches.shape[1], dim)).astype(np.float32) / np.float32(np.sqrt(dim))
    return np.ascontiguousarray(patches @ matrix, dtype=np.float32)


def greedy_coreset(
    patches: np.ndarray, size: int, rng: np.random.Generator, step: Callable[[int], None] | None = None
) -> np.ndarray:
    """Indices of `size` rows of `patches` chosen by farthest-point selection (all rows when fewer)."""
    n = len(patches)
    if n <= size:
        return np.arange(n)
    z = project(patches, rng)
    sq = np.einsum("ij,ij->i", z, z)
    nearest = np.full(n, np.inf, np.float32)
    chosen = np.empty(size, np.int64)
    chosen[0] = int(rng.integers(n))
    for k in range(1, size + 1):
        last = z[chosen[k - 1]]
        dist = sq - 2.0 * (z @ last) + float(last @ last)
        np.minimum(nearest, dist, out=nearest)
        if k == size:
            break
        chosen[k] = int(np.argmax(nearest))
        if step is not None:
            step(k)
    return chosen


def candidates(n: int, rng: np.random.Generator, limit: int = MAX_CANDIDATES) -> np.ndarray:
    """All patch indices, or a sorted random sample of `limit` of them."""
    return np.arange(n) if n <= limit else np.sort(rng.choice(n, limit, replace=False))
