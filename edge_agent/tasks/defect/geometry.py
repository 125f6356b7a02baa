"""How a part image becomes the model input, identically at fit time and on the device.

ROI crop, then (with ``orientation: auto``) a quarter turn for a part that lies across the way most
fitted parts lie, then a letterbox into the model input (the aspect ratio kept, the rest padded), so
mixed image sizes are never stretched differently. The input size is chosen from the images: their
own size up to a pixel budget that keeps one item within the latency goal, so a 640 x 640 image is
reduced 2.5x per side, not 4x; a finer look needs a --roi crop or a larger --size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from edge_agent.runtime.manifest import InputSpec

Orientation = Literal["auto", "none"]
# Pixels of the model input at most: 256 x 256, the scale PatchCore-style detectors are usually run at (a patch
# must see enough of its surroundings), and within the 25 ms per-item goal at 1 thread. A 640 x 640 part is
# reduced 2.5x per side. With the per-cell z map, KolektorSDD fp32 image AUROC is flat from 128x320 to 224x560
# (0.868-0.893, means over bank seeds that alone move it by 0.02) and falls at 256x640 (0.848), while the misses
# at the good-parts threshold grow with the size (41% at 160x400, 55-67% from 192x480): a larger input is no gain.
INPUT_AREA = 256 * 256
MULTIPLE = 16  # the coarsest feature map has stride 16
MIN_SIDE = 64
PAD_VALUE = 114


def input_size(width: int, height: int, area: int = INPUT_AREA) -> tuple[int, int]:
    """The images' own size, reduced to at most `area` pixels (aspect kept), sides multiples of 16."""
    scale = min(1.0, (area / (width * height)) ** 0.5)

    def side(v: int) -> int:
        return max(MIN_SIDE, int(v * scale / MULTIPLE + 0.5) * MULTIPLE)

    return side(width), side(height)


@dataclass(frozen=True)
class Geometry:
    """ROI, orientation and model input of one defect model (stored in the manifest's params)."""

    size: tuple[int, int]  # width, height of the model input
    channels: int  # 1 for grey parts, 3 for colour
    roi: tuple[int, int, int, int] | None = None
    orientation: Orientation = "none"
    landscape: bool = True  # with orientation auto: parts are turned to lie this way

    def spec(self, name: str = "image") -> InputSpec:
        """NHWC float input, pixels mapped to -1..1 as the pretrained backbone was trained (p / 128 - 1)."""
        w, h = self.size
        return InputSpec(
            name=name, shape=[1, h, w, self.channels], layout="NHWC", color="GRAY" if self.channels == 1 else "RGB",
            scale=1 / 128, mean=[1.0] * self.channels, std=[1.0] * self.channels,
        )  # fmt: skip

    def orient(self, image: np.ndarray) -> np.ndarray:
        """A quarter turn (clockwise) when orientation is auto and the part lies the other way."""
        if self.orientation != "auto":
            return image
        h, w = image.shape[:2]
        if h == w or (w > h) == self.landscape:
            return image
        return np.ascontiguousarray(np.rot90(image, k=-1))

    def shrink(self, image: np.ndarray) -> np.ndarray:
        """Reduced to fit the input with area averaging: a bilinear resize that skips pixels would alias fine
        texture into noise the bank has never seen (the letterbox that follows then only pads)."""
        h, w = image.shape[:2]
        scale = min(self.size[0] / w, self.size[1] / h)
        if scale >= 1.0:
            return image
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """Turned, then shrunk: what the letterbox receives."""
        return self.shrink(self.orient(image))

    def params(self) -> dict[str, Any]:
        return {"roi": list(self.roi) if self.roi else None, "orientation": self.orientation,
                "landscape": self.landscape, "letterbox": True}  # fmt: skip


def from_params(params: dict[str, Any], size: tuple[int, int], channels: int) -> Geometry:
    roi = params.get("roi")
    return Geometry(
        size, channels, tuple(int(v) for v in roi) if roi else None,  # type: ignore[arg-type]
        "auto" if params.get("orientation") == "auto" else "none", bool(params.get("landscape", True)),
    )  # fmt: skip
