"""Procedurally drawn back walls and clutter for the hard shelf composer: no photo licence attached.

Real scenes put false boxes on periodic things (tiles, solar-cell grids, keyboards, shelving, pegboards, brick),
on wood, metal and fabric, on text and on random objects. Each drawer below makes one family of them; a
`texture_bank` of their pictures replaces texture photos as walls and as unlabelled clutter (negatives), so the
shipped detector is trained only on material we own or that is permissively licensed. Pure numpy + OpenCV.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

Drawer = Callable[[np.random.Generator, int, int], np.ndarray]


def _tone(rng: np.random.Generator, low: int = 0, high: int = 256) -> np.ndarray:
    """A colour, often close to grey (walls, metal, cells are rarely saturated)."""
    grey = rng.uniform(low, high)
    spread = rng.uniform(0, 60) if rng.random() < 0.6 else rng.uniform(0, 160)
    return np.clip(grey + rng.uniform(-spread, spread, 3), 0, 255).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: float) -> np.ndarray:
    """Value noise in -1..1 with about `cells` blobs across the longer side."""
    n = max(2, int(cells))
    gh, gw = max(2, n * h // max(h, w) + 2), max(2, n * w // max(h, w) + 2)
    small = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
    return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), np.float32)


def _fractal(rng: np.random.Generator, h: int, w: int, octaves: int = 4) -> np.ndarray:
    out = np.zeros((h, w), np.float32)
    for k in range(octaves):
        out += _smooth_noise(rng, h, w, 4 * 2**k) / 2**k
    return out / 1.9


def _shade(grey: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Map a -1..1 field between two colours."""
    t = np.clip((grey + 1) / 2, 0, 1)[..., None]
    return np.asarray(low * (1 - t) + high * t, np.float32)


@dataclass(frozen=True)
class Grid:
    """One periodic pattern: cells of a size with gaps (grout, busbars, key gaps), row offsets, cell content."""

    cell: tuple[float, float]  # w, h in pixels
    gap: float
    offset: float  # share of a cell each row is shifted (brick 0.5)
    rounded: bool
    content: int  # 0 plain, 1 hole (pegboard), 2 fine lines (solar cell fingers), 3 glyph (keyboard)


def grid_pattern(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Tiles, brick, solar cells, keyboards, pegboards, racks: cells on a regular lattice."""
    scale = max(h, w)
    cw = scale * float(np.exp(rng.uniform(np.log(0.015), np.log(0.6))))
    ch = cw * float(np.exp(rng.uniform(np.log(0.3), np.log(3.0))))
    content = int(rng.integers(0, 4))
    grid = Grid((cw, ch), max(1.0, cw * rng.uniform(0.02, 0.25)), float(rng.choice([0.0, 0.0, 0.5, rng.random()])),
                bool(rng.random() < 0.4), content)  # fmt: skip
    base, cell = _tone(rng), _tone(rng)
    image = np.empty((h, w, 3), np.uint8)  # putText draws on 8-bit pictures only
    image[:] = base
    jitter = rng.uniform(0, 25)
    y, row, shift = -rng.uniform(0, ch), 0, rng.uniform(0, cw)
    while y < h:
        x = -shift - (row * grid.offset * cw) % cw
        while x < w:
            colour = np.clip(cell + rng.normal(0, jitter, 3) + rng.normal(0, jitter), 0, 255)
            _cell(image, grid, (int(x), int(y)), colour, rng)
            x += cw + grid.gap
        y += ch + grid.gap
        row += 1
    return image


def _cell(image: np.ndarray, grid: Grid, at: tuple[int, int], colour: np.ndarray, rng: np.random.Generator) -> None:
    x, y = at
    cw, ch = int(grid.cell[0]), int(grid.cell[1])
    tone = tuple(float(c) for c in colour)
    if grid.content == 1:  # pegboard: the board is the "cell", the hole the mark
        cv2.circle(image, (x + cw // 2, y + ch // 2), max(1, min(cw, ch) // 6), tone, -1, cv2.LINE_AA)
        return
    radius = max(0, min(cw, ch) // 8) if grid.rounded else 0
    cv2.rectangle(image, (x + radius, y), (x + cw - radius, y + ch), tone, -1)
    cv2.rectangle(image, (x, y + radius), (x + cw, y + ch - radius), tone, -1)
    if radius:
        for cx, cy in ((x + radius, y + radius), (x + cw - radius, y + radius), (x + radius, y + ch - radius),
                       (x + cw - radius, y + ch - radius)):  # fmt: skip
            cv2.circle(image, (cx, cy), radius, tone, -1, cv2.LINE_AA)
    mark = tuple(float(c) for c in np.clip(colour * rng.uniform(0.4, 1.6), 0, 255))
    if grid.content == 2 and ch > 6:  # solar cell: fingers and two or three busbars
        for fy in range(y, y + ch, max(2, ch // int(rng.integers(6, 30)))):
            cv2.line(image, (x, fy), (x + cw, fy), mark, 1)
        for k in range(1, int(rng.integers(2, 4)) + 1):
            bx = x + cw * k // (int(rng.integers(2, 4)) + 1)
            cv2.line(image, (bx, y), (bx, y + ch), mark, max(1, cw // 40))
    elif grid.content == 3 and ch > 8:  # key: a letter or digit
        glyph = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[int(rng.integers(36))]
        cv2.putText(image, glyph, (x + cw // 5, y + ch * 2 // 3), cv2.FONT_HERSHEY_SIMPLEX, ch / 60, mark, 1,
                    cv2.LINE_AA)  # fmt: skip


def stripes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Racks, blinds, corrugated and commutator-like metal: parallel bars of one period, at any angle."""
    period = max(h, w) * float(np.exp(rng.uniform(np.log(0.01), np.log(0.25))))
    angle = float(rng.choice([0.0, np.pi / 2, rng.uniform(0, np.pi)]))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = (xs * np.cos(angle) + ys * np.sin(angle)) / period * 2 * np.pi
    wave = np.sin(phase) if rng.random() < 0.5 else np.sign(np.sin(phase)) * rng.uniform(0.5, 1.0)
    wave = wave + 0.3 * _fractal(rng, h, w, 3)
    return _shade(wave.astype(np.float32), _tone(rng), _tone(rng))


def wood(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Grain: stretched noise bent into rings, in brown or painted tones."""
    ys = np.mgrid[0:h, 0:w][0].astype(np.float32)
    warp = _smooth_noise(rng, h, w, 3) * rng.uniform(5, 40)
    rings = np.sin((ys + warp) / rng.uniform(2, 20) + _fractal(rng, h, w, 3) * rng.uniform(1, 4))
    grain = rings * 0.7 + 0.3 * cv2.resize(rng.uniform(-1, 1, (h, max(2, w // 20))).astype(np.float32), (w, h))
    if rng.random() < 0.5:
        grain = grain.T if grain.shape[0] == grain.shape[1] else np.asarray(cv2.resize(grain.T, (w, h)))
    brown = np.array([40, 80, 130], np.float32) * rng.uniform(0.5, 1.6)
    low = brown if rng.random() < 0.7 else _tone(rng)
    return _shade(grain.astype(np.float32), low * 0.6, np.clip(low * 1.4, 0, 255))


def metal(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Brushed or cast metal: streaked noise with a soft highlight."""
    noise = rng.normal(0, 1, (h, w)).astype(np.float32)
    k = int(rng.integers(9, 61))
    kernel = np.zeros((k, k), np.float32)
    kernel[k // 2, :] = 1 / k
    streaks = cv2.filter2D(noise, -1, kernel) * rng.uniform(1.5, 4) + 0.4 * _fractal(rng, h, w, 2)
    highlight = np.linspace(-1, 1, w, dtype=np.float32)[None, :] * rng.uniform(-0.8, 0.8)
    grey = _tone(rng, 60, 220)
    return _shade(np.asarray(streaks + highlight, np.float32), grey * 0.6, np.clip(grey * 1.3, 0, 255))


def fabric(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Woven cloth, carpet, felt: two fine crossed waves with noise."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(2, 8)
    weave = np.sin(xs / period) * np.sin(ys / period) + 0.8 * _fractal(rng, h, w, 4)
    weave += rng.normal(0, rng.uniform(0.1, 0.5), (h, w)).astype(np.float32)
    return _shade(weave.astype(np.float32), _tone(rng), _tone(rng))


def gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Lit walls, sky, screens: a linear or radial blend of two or three colours with soft noise."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        t = (xs * np.cos(angle) + ys * np.sin(angle)) / max(h, w)
    else:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        t = np.hypot(xs - cx, ys - cy) / max(h, w)
    t = (t - t.min()) / max(1e-6, float(t.max() - t.min())) * 2 - 1
    return _shade(np.asarray(t + 0.15 * _fractal(rng, h, w, 2), np.float32), _tone(rng), _tone(rng))


def text_marks(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Posters, papers, screens, signs: lines of random characters on a plain ground."""
    image = np.empty((h, w, 3), np.uint8)
    image[:] = _tone(rng)
    ink = tuple(float(c) for c in _tone(rng))
    size = max(h, w) * rng.uniform(0.0015, 0.006)
    font = int(rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX,
                           cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX]))  # fmt: skip
    step = max(6, int(size * 30))
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,-%$"
    for y in range(int(rng.integers(step // 2, step + 1)), h, step):
        line = "".join(letters[i] for i in rng.integers(0, len(letters), int(rng.integers(4, 60))))
        cv2.putText(image, line, (int(rng.integers(0, max(1, w // 4))), y), font, size, ink, max(1, int(size)),
                    cv2.LINE_AA)  # fmt: skip
    return image


def shapes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Random geometric clutter: overlapping rectangles, circles, lines and polygons."""
    image = np.asarray(gradient(rng, h, w) if rng.random() < 0.5 else fabric(rng, h, w))
    for _ in range(int(rng.integers(3, 30))):
        colour = tuple(float(c) for c in _tone(rng))
        size = max(h, w) * rng.uniform(0.02, 0.3)
        x, y = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        kind = int(rng.integers(0, 4))
        if kind == 0:
            cv2.rectangle(image, (x, y), (int(x + size), int(y + size * rng.uniform(0.2, 2))), colour, -1)
        elif kind == 1:
            cv2.circle(image, (x, y), int(size / 2), colour, -1, cv2.LINE_AA)
        elif kind == 2:
            end = (int(x + rng.uniform(-size, size)), int(y + rng.uniform(-size, size)))
            cv2.line(image, (x, y), end, colour, max(1, int(size / 15)), cv2.LINE_AA)
        else:
            points = (np.array([x, y]) + rng.uniform(-size, size, (int(rng.integers(3, 7)), 2))).astype(np.int32)
            cv2.fillPoly(image, [points], colour, cv2.LINE_AA)
    return image


DRAWERS: tuple[Drawer, ...] = (grid_pattern, grid_pattern, grid_pattern, stripes, wood, metal, fabric, gradient,
                               text_marks, shapes)  # fmt: skip


def procedural_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """One drawn picture (BGR uint8) of a random family, sometimes blurred, noisy or unevenly lit."""
    image = DRAWERS[int(rng.integers(len(DRAWERS)))](rng, h, w)
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 3.0))
    light = 1 + rng.uniform(0, 0.5) * _smooth_noise(rng, h, w, 2)
    image = image * light[..., None] + rng.normal(0, rng.uniform(0, 6), image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def texture_bank(seed: int, count: int = 300, longest: int = 640) -> list[np.ndarray]:
    """`count` drawn pictures at camera-like aspect ratios, the stand-in for texture photos."""
    rng = np.random.default_rng(seed)
    bank = []
    for _ in range(count):
        w = int(rng.integers(longest // 2, longest + 1))
        h = int(w * rng.uniform(0.5, 1.5))
        bank.append(procedural_texture(rng, min(h, longest), w))
    return bank
