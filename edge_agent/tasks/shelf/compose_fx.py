"""Drawing and camera effects for the shelf composer: boards, walls, occluders, lighting, perspective, blur."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from edge_agent.tasks.shelf.compose import Sprite

Face = tuple[np.ndarray, np.ndarray]  # BGR image, float alpha 0..1 (h x w x 1)


def _colour(rng: np.random.Generator, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    c = rng.integers(low, high, 3)
    return int(c[0]), int(c[1]), int(c[2])


def procedural_sprite(rng: np.random.Generator, index: int) -> Sprite:
    """A package: a coloured box or bottle with stripes, a label block and noise."""
    from edge_agent.tasks.shelf.compose import Sprite

    h = int(rng.integers(80, 160))
    w = int(h * rng.uniform(0.35, 1.1))
    image = np.empty((h, w, 3), np.uint8)
    image[:] = _colour(rng, 30, 240)
    for _ in range(int(rng.integers(1, 4))):
        y = int(rng.integers(0, h))
        cv2.rectangle(image, (0, y), (w, y + int(rng.integers(4, h // 3))), _colour(rng), -1)
    cv2.circle(image, (w // 2, h // 2), max(3, w // 4), _colour(rng), -1)
    cv2.putText(image, chr(65 + index % 26), (w // 4, h // 2 + 8), cv2.FONT_HERSHEY_SIMPLEX, 0.8, _colour(rng), 2)
    noise = rng.normal(0, 6, image.shape)
    image = np.clip(image + noise, 0, 255).astype(np.uint8)
    return Sprite(image, package_alpha(h, w, bottle=bool(rng.random() < 0.3)), f"procedural-{index}")


def package_alpha(h: int, w: int, bottle: bool = False) -> np.ndarray:
    """Mask of a package seen from the front: a rectangle, slightly rounded, or a bottle with a neck."""
    alpha = np.zeros((h, w), np.uint8)
    if bottle:
        neck = max(2, w // 3)
        cv2.rectangle(alpha, ((w - neck) // 2, 0), ((w + neck) // 2, h // 4), 255, -1)
        cv2.ellipse(alpha, (w // 2, h // 4 + w // 4), (w // 2, w // 4), 0, 180, 360, 255, -1)
        cv2.rectangle(alpha, (0, h // 4 + w // 4), (w - 1, h - 1), 255, -1)
    else:
        radius = max(1, min(h, w) // 12)
        cv2.rectangle(alpha, (radius, 0), (w - 1 - radius, h - 1), 255, -1)
        cv2.rectangle(alpha, (0, radius), (w - 1, h - 1 - radius), 255, -1)
        for cx, cy in (
            (radius, radius),
            (w - 1 - radius, radius),
            (radius, h - 1 - radius),
            (w - 1 - radius, h - 1 - radius),
        ):
            cv2.circle(alpha, (cx, cy), radius, 255, -1)
    return alpha


def back_wall(rng: np.random.Generator, h: int, w: int, textures: list[np.ndarray]) -> np.ndarray:
    """The back of the shelf: a flat or textured colour, or a heavily blurred store photo."""
    if textures and rng.random() < 0.4:
        tex = textures[int(rng.integers(len(textures)))]
        photo = cv2.GaussianBlur(cv2.resize(tex, (w, h), interpolation=cv2.INTER_LINEAR), (0, 0), rng.uniform(6, 14))
        return np.asarray(photo * rng.uniform(0.3, 0.7), dtype=np.uint8)
    wall = np.empty((h, w, 3), np.float32)
    wall[:] = _colour(rng, 20, 230)
    ramp = np.linspace(rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0), h, dtype=np.float32)[:, None, None]
    wall *= ramp
    if rng.random() < 0.5:  # pegboard / perforated metal back panels
        step = int(rng.integers(10, 24))
        wall[step // 2 :: step, step // 2 :: step] *= 0.4
    noise: np.ndarray = rng.normal(0.0, float(rng.uniform(1, 8)), size=wall.shape)
    wall += noise.astype(np.float32)
    return np.clip(wall, 0, 255).astype(np.uint8)


def board_style(rng: np.random.Generator) -> tuple[tuple[int, int, int], bool]:
    """Shelf edge colour and whether it carries price tags."""
    palette = [(235, 235, 235), (60, 60, 60), (70, 110, 160), (180, 180, 185), _colour(rng)]
    return palette[int(rng.integers(len(palette)))], bool(rng.random() < 0.8)


def draw_row_back(canvas: np.ndarray, rng: np.random.Generator, y0: int, y1: int) -> None:
    """Darken the top of each shelf opening: the board above casts a shadow."""
    depth = max(1, int((y1 - y0) * rng.uniform(0.1, 0.35)))
    y0 = max(0, y0)
    shade = np.linspace(rng.uniform(0.4, 0.8), 1.0, depth, dtype=np.float32)[:, None, None]
    band = canvas[y0 : y0 + depth]
    canvas[y0 : y0 + depth] = (band * shade[: band.shape[0]]).astype(np.uint8)


def draw_board(
    canvas: np.ndarray, rng: np.random.Generator, y0: int, y1: int, style: tuple[tuple[int, int, int], bool]
) -> None:
    """The shelf edge, with price tags (unlabelled: the detector must learn they are not products)."""
    colour, tags = style
    w = canvas.shape[1]
    cv2.rectangle(canvas, (0, y0), (w, y1), colour, -1)
    cv2.line(canvas, (0, y0), (w, y0), tuple(int(c * 0.6) for c in colour), 1)
    if not tags:
        return
    x = int(rng.integers(0, 40))
    while x < w:
        tw = int(rng.integers(24, 60))
        cv2.rectangle(canvas, (x, y0 + 1), (x + tw, y1 - 1), _colour(rng, 200, 256), -1)
        cv2.putText(
            canvas,
            str(int(rng.integers(10, 99))),
            (x + 2, y1 - 2),
            cv2.FONT_HERSHEY_PLAIN,
            max(0.5, (y1 - y0) / 16),
            (0, 0, 0),
            1,
        )
        x += tw + int(rng.integers(30, 160))


def prepare_face(sprite: Sprite, w: int, h: int, rng: np.random.Generator) -> Face:
    """The sprite at facing size, with its own brightness and hue so neighbours are not identical."""
    w, h = max(2, w), max(2, h)
    image = cv2.resize(sprite.image, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    alpha = cv2.resize(sprite.alpha, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
    image = (image * rng.uniform(0.75, 1.2) + rng.normal(0.0, 8.0, size=3)).astype(np.float32)
    if rng.random() < 0.3:  # side shading: packages are lit from above and the front
        image *= np.linspace(rng.uniform(0.6, 1.0), 1.0, w, dtype=np.float32)[None, :, None]
    return np.clip(image, 0, 255).astype(np.uint8), alpha[..., None]


def paste(canvas: np.ndarray, face: Face, x: int, y: int) -> None:
    image, alpha = face
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(canvas.shape[1], x + w), min(canvas.shape[0], y + h)
    if x1 <= x0 or y1 <= y0:
        return
    src = image[y0 - y : y1 - y, x0 - x : x1 - x].astype(np.float32)
    a = alpha[y0 - y : y1 - y, x0 - x : x1 - x]
    dst = canvas[y0:y1, x0:x1].astype(np.float32)
    canvas[y0:y1, x0:x1] = (src * a + dst * (1 - a)).astype(np.uint8)


def draw_occluder(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A shopper's arm (a thick capsule from the frame edge in skin or sleeve colour); returns its mask."""
    h, w = canvas.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    start = (int(rng.integers(0, w)), h + 10) if rng.random() < 0.6 else (-10, int(rng.integers(0, h)))
    end = (int(rng.integers(w // 5, 4 * w // 5)), int(rng.integers(h // 5, 4 * h // 5)))
    thickness = int(min(h, w) * rng.uniform(0.06, 0.16))
    cv2.line(mask, start, end, 255, thickness)
    cv2.circle(mask, end, int(thickness * 0.7), 255, -1)
    skin = [(90, 130, 190), (60, 90, 140), (120, 160, 215), (40, 60, 90)]
    colour = skin[int(rng.integers(len(skin)))] if rng.random() < 0.6 else _colour(rng)
    layer = np.empty_like(canvas)
    layer[:] = colour
    layer = np.clip(layer + rng.normal(0, 10, layer.shape), 0, 255).astype(np.uint8)
    canvas[mask > 0] = layer[mask > 0]
    return mask


def visible_share(mask: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Share of each box not covered by the mask (an integral image keeps this one pass)."""
    if len(boxes) == 0:
        return np.ones(0, np.float32)
    integral = cv2.integral((mask > 0).astype(np.uint8))
    b = np.clip(np.rint(boxes), 0, [mask.shape[1], mask.shape[0]] * 2).astype(np.int64)
    covered = (
        integral[b[:, 3], b[:, 2]]
        - integral[b[:, 1], b[:, 2]]
        - integral[b[:, 3], b[:, 0]]
        + integral[b[:, 1], b[:, 0]]
    )
    area = np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1)
    return np.asarray(1 - covered / area, np.float32)


def draw_distractors(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """Shelf clutter that is not a product facing: hanging signs and stickers."""
    h, w = canvas.shape[:2]
    for _ in range(int(rng.integers(1, 3))):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        sw, sh = int(rng.integers(20, 70)), int(rng.integers(10, 30))
        cv2.rectangle(canvas, (x, y), (x + sw, y + sh), _colour(rng, 150, 256), -1)
        cv2.putText(canvas, "%", (x + 2, y + sh - 2), cv2.FONT_HERSHEY_PLAIN, 1.0, (0, 0, 200), 1)


def camera(
    canvas: np.ndarray, rng: np.random.Generator, boxes: np.ndarray, zones: list[np.ndarray], strength: float
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Perspective, lighting, blur, noise and JPEG: what a real camera does to the shelf."""
    h, w = canvas.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    dst = src + rng.uniform(-strength, strength, (4, 2)).astype(np.float32) * np.array([w, h], np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    image = cv2.warpPerspective(canvas, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
    boxes = _warp_boxes(boxes, matrix)
    zones = [cv2.perspectiveTransform(z[None], matrix)[0] for z in zones]
    image = _lighting(image, rng)
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 1.6))
    elif rng.random() < 0.3:
        k = int(rng.integers(3, 8))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1 / k
        image = cv2.filter2D(image, -1, kernel)
    noisy = image.astype(np.float32) + rng.normal(0, rng.uniform(0, 6), image.shape).astype(np.float32)
    image = np.clip(noisy, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(45, 95))])
    decoded = cv2.imdecode(jpeg, cv2.IMREAD_COLOR) if ok else None
    if decoded is not None:
        image = decoded
    return image, boxes, zones


def _warp_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    if len(boxes) == 0:
        return boxes
    corners = boxes[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 4, 2)
    warped = cv2.perspectiveTransform(corners.reshape(1, -1, 2), matrix).reshape(-1, 4, 2)
    return np.concatenate([warped.min(axis=1), warped.max(axis=1)], axis=1).astype(np.float32)


def _lighting(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    out = image.astype(np.float32)
    out = out * rng.uniform(0.55, 1.3) + rng.uniform(-20, 20)
    out *= rng.uniform(0.85, 1.15, 3).astype(np.float32)  # colour cast of the store lights
    gx = np.linspace(rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0), w, dtype=np.float32)
    gy = np.linspace(rng.uniform(0.7, 1.0), rng.uniform(0.7, 1.0), h, dtype=np.float32)
    out *= (gy[:, None] * gx[None, :])[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def inside_share(boxes: np.ndarray, shape: tuple[int, ...], minimum: float) -> np.ndarray:
    """Boxes with at least `minimum` of their area inside the frame."""
    if len(boxes) == 0:
        return np.ones(0, bool)
    clipped = clip_boxes(boxes, shape)
    area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-6)
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    return np.asarray(inside / area >= minimum)


def clip_boxes(boxes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = boxes.copy()
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, shape[1])
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, shape[0])
    return np.asarray(out, np.float32)
