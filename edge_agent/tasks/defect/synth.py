"""Synthetic product images for the shipped defect model and the demo: a machined plate on a conveyor.

Good parts vary in position, rotation, lighting and surface texture. Defective parts add one of four
kinds, each with its ground-truth mask: a scratch, a dent, a stain or a missing feature (a hole or
the label). These defects are drawn differently from the training augmentations (anomalies.py), so
an evaluation on them says something about unseen defects.

    python -m edge_agent.tasks.defect.synth --out /tmp/parts --good 300 --defects 60 --seed 1
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

DEFECT_KINDS = ("scratch", "dent", "stain", "missing")


@dataclass(frozen=True)
class Layout:
    """Everything that makes one good part look the way it does (so it can be re-rendered with changes)."""

    size: int
    cx: float
    cy: float
    angle: float
    gain: float
    tilt: tuple[float, float]
    texture_seed: int


def sample_layout(rng: np.random.Generator, size: int) -> Layout:
    return Layout(
        size=size, cx=size / 2 + rng.normal(0, size * 0.015), cy=size / 2 + rng.normal(0, size * 0.015),
        angle=float(rng.normal(0, 2.0)), gain=float(rng.uniform(0.88, 1.12)),
        tilt=(float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.08, 0.08))),
        texture_seed=int(rng.integers(1 << 31)),
    )  # fmt: skip


HOLES = ((0.18, 0.2), (0.82, 0.2), (0.18, 0.8), (0.82, 0.8))


def _plate(side: int, rng: np.random.Generator, omit: frozenset[str]) -> tuple[np.ndarray, np.ndarray]:
    """The part in its own square frame (BGR float) and its alpha (the plate's outline)."""
    streaks = cv2.blur(rng.normal(0, 1, (side, side)).astype(np.float32), (41, 1)) * 18
    grain = rng.normal(0, 3, (side, side)).astype(np.float32)
    plate = np.stack([148 + streaks + grain, 150 + streaks + grain, 156 + streaks + grain], axis=2)
    alpha = np.zeros((side, side), np.float32)
    r = side // 10
    cv2.rectangle(alpha, (r, r), (side - r, side - r), 1.0, -1)
    for x, y in ((r, r), (side - r, r), (r, side - r), (side - r, side - r)):
        cv2.circle(alpha, (x, y), r, 1.0, -1)
    cv2.rectangle(alpha, (0, r), (side, side - r), 1.0, -1)
    cv2.rectangle(alpha, (r, 0), (side - r, side), 1.0, -1)
    for i, (hx, hy) in enumerate(HOLES):
        if f"hole{i}" in omit:
            continue
        centre, radius = (int(hx * side), int(hy * side)), int(0.07 * side)
        cv2.circle(plate, centre, radius + 2, (200, 202, 208), -1, cv2.LINE_AA)
        cv2.circle(plate, centre, radius, (38, 36, 34), -1, cv2.LINE_AA)
    if "label" not in omit:
        x0, y0, x1, y1 = int(0.32 * side), int(0.38 * side), int(0.68 * side), int(0.62 * side)
        cv2.rectangle(plate, (x0, y0), (x1, y1), (150, 90, 30), -1)
        for k in range(3):
            yy = y0 + int((k + 1) * (y1 - y0) / 4)
            cv2.line(plate, (x0 + 6, yy), (x1 - 6 - 10 * k, yy), (235, 235, 235), 2)
    return plate, alpha


def render(layout: Layout, omit: frozenset[str] = frozenset()) -> np.ndarray:
    """The part on a dark conveyor, as a camera sees it (uint8 BGR)."""
    size = layout.size
    rng = np.random.default_rng(layout.texture_seed)
    side = int(size * 0.78)
    plate, alpha = _plate(side, rng, omit)
    matrix = np.asarray(cv2.getRotationMatrix2D((side / 2, side / 2), layout.angle, 1.0), np.float64)
    matrix[:, 2] += np.array([layout.cx - side / 2, layout.cy - side / 2])
    warped = cv2.warpAffine(plate, matrix, (size, size), flags=cv2.INTER_LINEAR)
    walpha = cv2.warpAffine(alpha, matrix, (size, size), flags=cv2.INTER_LINEAR)[..., None]
    belt = 42 + cv2.GaussianBlur(rng.normal(0, 6, (size, size)).astype(np.float32), (0, 0), 1.5)[..., None]
    image = warped * walpha + belt * (1 - walpha)
    grid = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    light = layout.gain * (1 + layout.tilt[0] * grid[1] + layout.tilt[1] * grid[0])
    noise = rng.normal(0, 2.0, np.shape(image)).astype(np.float32)
    return np.asarray(np.clip(image * light[..., None] + noise, 0, 255), np.uint8)


def _on_plate(layout: Layout, rng: np.random.Generator) -> tuple[float, float]:
    """A random point on the plate, away from its border."""
    s = layout.size * 0.78 * 0.7
    return layout.cx + rng.uniform(-s / 2, s / 2), layout.cy + rng.uniform(-s / 2, s / 2)


def scratch(image: np.ndarray, layout: Layout, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x, y = _on_plate(layout, rng)
    angle, length = rng.uniform(0, np.pi), rng.uniform(0.12, 0.35) * layout.size
    t = np.linspace(-0.5, 0.5, 12)[:, None]
    bend = rng.normal(0, 0.08) * length * (t**2 - 0.25)
    direction, normal = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
    points = np.array([x, y]) + t * length * direction + bend * normal
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.polylines(mask, [np.round(points * 4).astype(np.int32)], False, 255, int(rng.choice([1, 2])), cv2.LINE_AA, 2)
    tone = 235.0 if rng.random() < 0.5 else 60.0
    a = mask.astype(np.float32)[..., None] / 255 * rng.uniform(0.55, 0.9)
    return image * (1 - a) + tone * a, mask > 40


def dent(image: np.ndarray, layout: Layout, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x, y = _on_plate(layout, rng)
    r = rng.uniform(0.035, 0.08) * layout.size
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(np.float32)
    d2 = ((xx - x) ** 2 + ((yy - y) * rng.uniform(0.7, 1.4)) ** 2) / r**2
    bowl = np.exp(-d2)
    # light from the top left: the far wall of the dent is lit, the near wall in shadow
    slope = np.gradient(bowl, axis=0) + np.gradient(bowl, axis=1)
    shade = 1 + rng.uniform(2.5, 5.0) * r * slope / layout.size * 8 - 0.15 * bowl
    return image * shade[..., None], (d2 < 1.3)


def stain(image: np.ndarray, layout: Layout, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x, y = _on_plate(layout, rng)
    r = rng.uniform(0.04, 0.1) * layout.size
    n = 9
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = r * rng.uniform(0.5, 1.2, n)
    pts = np.stack([x + radii * np.cos(angles), y + radii * np.sin(angles)], axis=1)
    mask = np.zeros(image.shape[:2], np.float32)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1.0, cv2.LINE_AA)
    soft = cv2.GaussianBlur(mask, (0, 0), 1.5)[..., None] * rng.uniform(0.45, 0.8)
    colour = np.array([30, 60, 95], np.float32) * rng.uniform(0.7, 1.3)  # rust / oil brown (BGR)
    return image * (1 - soft) + colour * soft, mask > 0.5


def missing(image: np.ndarray, layout: Layout, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    feature = str(rng.choice(["hole0", "hole1", "hole2", "hole3", "label"]))
    altered = render(layout, frozenset({feature})).astype(np.float32)
    changed = np.abs(altered - image).max(axis=2) > 25
    return altered, cv2.dilate(changed.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


DRAW = {"scratch": scratch, "dent": dent, "stain": stain, "missing": missing}


def make_part(rng: np.random.Generator, size: int, kind: str | None) -> tuple[np.ndarray, np.ndarray]:
    """One part (uint8 BGR) and its defect mask (bool; all False for a good part)."""
    layout = sample_layout(rng, size)
    image = render(layout)
    if kind is None:
        return image, np.zeros((size, size), bool)
    out, mask = DRAW[kind](image.astype(np.float32), layout, rng)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), np.asarray(mask, bool)


def write_set(out: Path, good: int, defects: int, size: int, seed: int, quality: int = 90) -> None:
    """out/good/*.jpg, out/defects/*.jpg and out/masks/*.png (masks named like their defect image)."""
    rng = np.random.default_rng(seed)
    for sub in ("good", "defects", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for i in range(good):
        image, _ = make_part(rng, size, None)
        cv2.imwrite(str(out / "good" / f"good_{i:04d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    for i in range(defects):
        kind = DEFECT_KINDS[i % len(DEFECT_KINDS)]
        image, mask = make_part(rng, size, kind)
        name = f"{kind}_{i:04d}"
        cv2.imwrite(str(out / "defects" / f"{name}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        cv2.imwrite(str(out / "masks" / f"{name}.png"), mask.astype(np.uint8) * 255)


def write_demo(out: Path, count: int, defect_every: int, size: int, seed: int, quality: int = 85) -> None:
    """One folder of parts as they come down the line: mostly good, every n-th one defective (kind in its name)."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        kind = DEFECT_KINDS[(i // defect_every) % len(DEFECT_KINDS)] if i % defect_every == defect_every - 1 else None
        image, _ = make_part(rng, size, kind)
        cv2.imwrite(str(out / f"part_{i:03d}_{kind or 'good'}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, quality])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write synthetic good and defective part images with masks.")
    p.add_argument("--out", type=Path, required=True, help="folder to write good/, defects/ and masks/ into")
    p.add_argument("--good", type=int, default=300, help="number of good parts")
    p.add_argument("--defects", type=int, default=60, help="number of defective parts (kinds in turn)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality")
    args = p.parse_args(argv)
    if args.size < 64 or args.good < 0 or args.defects < 0:
        sys.stderr.write("error: --size must be >= 64 and counts >= 0\n")
        return 2
    write_set(args.out, args.good, args.defects, args.size, args.seed, args.quality)
    sys.stderr.write(f"wrote {args.good} good and {args.defects} defective parts to {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
