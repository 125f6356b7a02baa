"""Synthetic anomalies pasted onto good images: the self-supervised training signal of the defect model.

The model never sees a real defect while it trains (DRAEM / CutPaste idea): it learns to segment
scratches, stains, dents, pasted patches and missing texture that this module draws on good images,
and so learns what "good" looks like. The label is only where the drawing visibly changed pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

# A pixel counts as anomalous when the drawing changed it by more than this (0..255 grey levels).
VISIBLE_DELTA = 10.0


def blob_mask(h: int, w: int, rng: np.random.Generator, min_frac: float = 0.04, max_frac: float = 0.3) -> np.ndarray:
    """An irregular soft blob (float32 0..1) somewhere in an h x w image."""
    bh = max(3, int(h * rng.uniform(min_frac, max_frac)))
    bw = max(3, int(w * rng.uniform(min_frac, max_frac)))
    noise = cv2.resize(rng.random((4, 4), dtype=np.float32), (bw, bh), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:bh, 0:bw].astype(np.float32)
    ellipse = 1.0 - ((yy / bh * 2 - 1) ** 2 + (xx / bw * 2 - 1) ** 2)
    shape = (ellipse + 0.6 * (noise - 0.5) > 0.25).astype(np.float32)
    out = np.zeros((h, w), np.float32)
    y0, x0 = int(rng.integers(0, max(1, h - bh + 1))), int(rng.integers(0, max(1, w - bw + 1)))
    out[y0 : y0 + bh, x0 : x0 + bw] = shape[: h - y0, : w - x0]
    k = int(rng.choice([1, 3, 5]))
    return cv2.GaussianBlur(out, (k, k), 0) if k > 1 else out


def scratch_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A thin jagged polyline (crack or scratch), anti-aliased, float32 0..1."""
    mask = np.zeros((h, w), np.uint8)
    side = min(h, w)
    point = np.array([rng.uniform(0, w), rng.uniform(0, h)])
    angle = rng.uniform(0, np.pi)
    points = [point.copy()]
    for _ in range(int(rng.integers(2, 7))):
        angle += rng.normal(0, 0.5)
        step = rng.uniform(0.04, 0.2) * side
        point = point + step * np.array([np.cos(angle), np.sin(angle)])
        points.append(point.copy())
    pts = np.round(np.array(points) * 4).astype(np.int32)  # 2 fractional bits for sub-pixel lines
    thickness = int(rng.choice([1, 1, 2, 3]))
    cv2.polylines(mask, [pts], False, 255, thickness, lineType=cv2.LINE_AA, shift=2)
    return mask.astype(np.float32) / 255.0


def _blend(image: np.ndarray, target: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return np.asarray(image.astype(np.float32) * (1.0 - a) + target.astype(np.float32) * a, np.float32)


def _tone(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A flat colour clearly darker or brighter than the image's median."""
    base = np.median(image.reshape(-1, image.shape[2]), axis=0)
    sign = -1.0 if rng.random() < 0.65 else 1.0
    delta = sign * rng.uniform(35, 110)
    tint = rng.uniform(-25, 25, size=image.shape[2]) if image.shape[2] == 3 else 0.0
    return np.asarray(np.clip(base + delta + tint, 0, 255), np.float32) * np.ones_like(image, np.float32)


def draw_scratch(image: np.ndarray, donor: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    alpha = scratch_mask(image.shape[0], image.shape[1], rng) * rng.uniform(0.6, 1.0)
    return _blend(image, _tone(image, rng), alpha)


def draw_stain(image: np.ndarray, donor: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    alpha = blob_mask(image.shape[0], image.shape[1], rng) * rng.uniform(0.35, 0.9)
    return _blend(image, _tone(image, rng), alpha)


def draw_dent(image: np.ndarray, donor: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Smooth shading over a blob, as a dent or a bump changes how light falls."""
    shape = cv2.GaussianBlur(blob_mask(image.shape[0], image.shape[1], rng, 0.05, 0.3), (0, 0), 2.0)
    gain = 1.0 + rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 0.6) * shape
    return np.asarray(image.astype(np.float32) * gain[..., None], np.float32)


def draw_cutpaste(image: np.ndarray, donor: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A piece of another good image (moved, flipped or rotated) pasted through a blob mask."""
    patch = donor
    if rng.random() < 0.5:
        patch = np.ascontiguousarray(patch[:, ::-1] if rng.random() < 0.5 else patch[::-1])
    shift = (int(rng.integers(-patch.shape[0] // 3, patch.shape[0] // 3 + 1)),
             int(rng.integers(-patch.shape[1] // 3, patch.shape[1] // 3 + 1)))  # fmt: skip
    patch = np.roll(patch, shift, axis=(0, 1)).astype(np.float32) * rng.uniform(0.75, 1.25)
    return _blend(image, patch, blob_mask(image.shape[0], image.shape[1], rng))


def draw_missing(image: np.ndarray, donor: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Texture or a feature wiped out: the region becomes a blurred or flat copy of itself."""
    if rng.random() < 0.5:
        filled = cv2.GaussianBlur(image, (0, 0), rng.uniform(4, 10)).reshape(image.shape).astype(np.float32)
    else:
        filled = np.median(image.reshape(-1, image.shape[2]), axis=0) * np.ones_like(image, np.float32)
    return _blend(image, filled, blob_mask(image.shape[0], image.shape[1], rng))


def draw_noise(image: np.ndarray, donor: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A foreign texture: random noise at a random grain, as a smear or a foreign particle."""
    h, w, c = image.shape
    grain = int(rng.integers(2, 12))
    small = rng.random((max(1, h // grain), max(1, w // grain), c), dtype=np.float32)
    texture = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, c) * 255.0
    return _blend(image, texture, blob_mask(image.shape[0], image.shape[1], rng) * rng.uniform(0.5, 1.0))


DRAWERS: dict[str, Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]] = {
    "scratch": draw_scratch,
    "stain": draw_stain,
    "dent": draw_dent,
    "cutpaste": draw_cutpaste,
    "missing": draw_missing,
    "noise": draw_noise,
}
# Thin cracks and scratches are the commonest real surface defects, so they are drawn most often.
WEIGHTS = np.array([0.35, 0.15, 0.12, 0.14, 0.12, 0.12])


def add_anomalies(
    image: np.ndarray, donor: np.ndarray, rng: np.random.Generator, count: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Draw `count` random anomalies on an H x W x C uint8 image; return it and its 0/1 float32 mask."""
    if image.ndim != 3 or donor.shape != image.shape:
        raise ValueError(f"image {image.shape} and donor {donor.shape} must both be H x W x C")
    names = list(DRAWERS)
    out = image.astype(np.float32)
    for _ in range(count):
        name = names[int(rng.choice(len(names), p=WEIGHTS / WEIGHTS.sum()))]
        out = DRAWERS[name](out, donor, rng)
    result = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    changed = np.abs(result.astype(np.float32) - image.astype(np.float32)).max(axis=2) > VISIBLE_DELTA
    return result, changed.astype(np.float32)
