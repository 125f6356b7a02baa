"""Heat map overlay, defect box and size-bounded JPEG snapshots for defect events (numpy + OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np

JPEG_QUALITIES = (85, 70, 55, 40, 30)


def upsample_map(amap: np.ndarray, width: int, height: int) -> np.ndarray:
    """The anomaly map (h x w, 0..1) stretched over an image of width x height."""
    return np.asarray(cv2.resize(amap.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR))


def defect_box(amap: np.ndarray, level: float, width: int, height: int) -> tuple[int, int, int, int]:
    """x, y, w, h (pixels of a width x height image) around the connected region holding the peak cell."""
    peak = float(amap.max())
    mask = (amap >= peak * level).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    py, px = np.unravel_index(int(np.argmax(amap)), amap.shape)
    x, y, w, h, _area = stats[labels[py, px]]
    sx, sy = width / amap.shape[1], height / amap.shape[0]
    x0, y0 = int(np.floor(x * sx)), int(np.floor(y * sy))
    x1, y1 = min(width, int(np.ceil((x + w) * sx))), min(height, int(np.ceil((y + h) * sy)))
    return x0, y0, x1 - x0, y1 - y0


def overlay(
    image: np.ndarray, amap: np.ndarray, alpha: float, box: tuple[int, int, int, int] | None, caption: str
) -> np.ndarray:
    """The image with the map as a JET heat map (opacity grows with the score), the box and a caption."""
    h, w = image.shape[:2]
    heat = upsample_map(np.clip(amap, 0, 1), w, h)
    colours = cv2.applyColorMap(np.round(heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
    weight = (alpha * heat)[..., None]
    out = np.round(image.astype(np.float32) * (1 - weight) + colours.astype(np.float32) * weight).astype(np.uint8)
    thick = max(1, round(max(h, w) / 300))
    if box is not None:
        x, y, bw, bh = box
        cv2.rectangle(out, (x, y), (x + bw - 1, y + bh - 1), (0, 0, 255), thick)
    scale = max(0.4, max(h, w) / 900)
    cv2.putText(out, caption, (5, int(22 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2)
    cv2.putText(out, caption, (5, int(22 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick)
    return out


def bounded_jpeg(image: np.ndarray, max_bytes: int, max_side: int) -> bytes:
    """JPEG of at most max_bytes: shrink to max_side, then lower the quality, then shrink further."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    while True:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = image if scale == 1.0 else cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        for quality in JPEG_QUALITIES:
            ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok and len(data) <= max_bytes:
                return bytes(data.tobytes())
        if max(size) <= 16:
            raise ValueError(f"cannot encode a JPEG under {max_bytes} bytes")
        scale *= 0.7
