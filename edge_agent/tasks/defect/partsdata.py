"""Good and defect folders read for a patch-feature fit: decoded once, cropped, turned, letterboxed, normalised.

The inputs go through the daemon's own ImagePreprocessor, so the fit sees exactly what the device will.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.errors import DataError
from edge_agent.tasks.defect.geometry import PAD_VALUE, Geometry, Orientation, input_size
from edge_agent.tasks.defect.images import crop_roi, is_gray, list_images, mask_warning, read_images, size_warnings
from edge_agent.tasks.preprocess import ImagePreprocessor


@dataclass
class PartInputs:
    """Model inputs of one folder (N x H x W x C, float16: p / 128 - 1 is exact in it) and their file names."""

    x: np.ndarray
    names: list[str]


def read_folder(
    folder: Path, role: str, roi: tuple[int, int, int, int] | None
) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Decoded, ROI-cropped frames, their names and the warnings to show (skipped files, mixed sizes)."""
    paths, notes, masks = list_images(folder, role)
    frames, names, more, black = read_images(paths, role)
    if not frames:
        why = "all are masks or labels" if black == len(paths) else "none could be decoded as an image"
        raise DataError(
            f"{role} folder {folder}: none of its {len(paths)} image file(s) is a photo of a part ({why});"
            f" put photos of {role} parts there"
        )
    notes += mask_warning(folder, role, masks + black)
    frames = [crop_roi(f, roi, n) for f, n in zip(frames, names)]
    return frames, names, notes + more + size_warnings(frames, role)


def choose_geometry(
    frames: list[np.ndarray], size: tuple[int, int] | None, roi: tuple[int, int, int, int] | None,
    orientation: Orientation,
) -> Geometry:  # fmt: skip
    """Channels from the images (grey stays grey), input size from their median size (after turning)."""
    landscape = float(np.mean([f.shape[1] >= f.shape[0] for f in frames])) >= 0.5
    shapes = [f.shape[:2] for f in frames]
    if orientation == "auto":  # the sizes the parts have once turned to lie alike
        shapes = [(h, w) if (w >= h) == landscape else (w, h) for h, w in shapes]
    if size is None:
        size = input_size(int(np.median([s[1] for s in shapes])), int(np.median([s[0] for s in shapes])))
    return Geometry(size, 1 if is_gray(frames) else 3, roi, orientation, landscape)


def prepare(frames: list[np.ndarray], names: list[str], geometry: Geometry) -> PartInputs:
    """Every frame turned and letterboxed into the model input, normalised by the manifest's input spec."""
    pre = ImagePreprocessor(geometry.spec(), letterbox=True, pad_value=PAD_VALUE)
    w, h = geometry.size
    out = np.empty((len(frames), h, w, geometry.channels), np.float16)
    for i, frame in enumerate(frames):
        buffer, _ = pre(geometry.prepare(frame))
        out[i] = buffer[0]
    return PartInputs(out, names)
