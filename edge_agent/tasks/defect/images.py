"""Reading a folder of product images for fitting: checks, clear errors and warnings, ROI crop, resize."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge_agent.errors import DataError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})
MIN_GOOD_IMAGES = 8
FEW_GOOD_IMAGES = 30
Roi = tuple[int, int, int, int]


@dataclass
class ImageSet:
    """Images resized to the model input (N x H x W x C uint8) with their file names."""

    images: np.ndarray
    names: list[str]
    sizes: list[tuple[int, int]] = field(default_factory=list)


def list_images(folder: Path, role: str) -> tuple[list[Path], list[str]]:
    """Image files in `folder` (sorted) and warnings about what was skipped; DataError if there are none."""
    if not folder.exists():
        raise DataError(f"{role} folder {folder} does not exist")
    if not folder.is_dir():
        raise DataError(f"{role} folder {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    others = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    skipped = ""
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        skipped = f"skipped {len(others)} file(s) that are not images ({shown})"
    if not images:
        raise DataError(
            f"{role} folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            + (f"; {skipped}" if skipped else "")
            + f"; put photos of {role} parts there"
        )
    return images, [f"{role} folder {folder}: {skipped}"] if skipped else []


def parse_roi(text: str) -> Roi:
    """'x,y,w,h' in frame pixels."""
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise DataError(f"--roi {text!r}: expected x,y,width,height in pixels, e.g. 100,50,640,480") from None
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise DataError(f"--roi {text!r}: x and y must be >= 0 and width and height > 0")
    return x, y, w, h


def crop_roi(image: np.ndarray, roi: Roi | None, name: str) -> np.ndarray:
    if roi is None:
        return image
    x, y, w, h = roi
    if x + w > image.shape[1] or y + h > image.shape[0]:
        raise DataError(
            f"{name}: ROI x={x} y={y} w={w} h={h} reaches outside the {image.shape[1]}x{image.shape[0]} image"
        )
    return image[y : y + h, x : x + w]


def read_images(paths: list[Path], role: str) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Decode files as BGR; unreadable ones are skipped with a warning instead of stopping the fit."""
    frames, names, bad = [], [], []
    for path in paths:
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None or frame.size == 0:
            bad.append(path.name)
            continue
        frames.append(frame)
        names.append(path.name)
    warnings = []
    if bad:
        shown = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
        warnings.append(f"{role}: skipped {len(bad)} file(s) that could not be decoded as images ({shown})")
    return frames, names, warnings


def size_warnings(frames: list[np.ndarray], role: str) -> list[str]:
    """Mixed sizes are resized to one input size; mixed aspect ratios also distort the part, so say so."""
    sizes = Counter((f.shape[1], f.shape[0]) for f in frames)
    if len(sizes) <= 1:
        return []
    common = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(3))
    text = f"{role}: images have {len(sizes)} different sizes ({common}{', ...' if len(sizes) > 3 else ''})"
    ratios = [w / h for w, h in sizes]
    if max(ratios) / min(ratios) > 1.1:
        return [f"{text} and different aspect ratios; parts will be stretched differently: crop them alike"]
    return [f"{text}; all are resized to the model input size"]


def is_gray(frames: list[np.ndarray]) -> bool:
    """True when every frame has equal B, G and R (a monochrome camera saved as colour)."""
    for frame in frames[:50]:
        small = frame[::7, ::7].astype(np.int16)
        if np.abs(small[..., 0] - small[..., 1]).max() > 2 or np.abs(small[..., 1] - small[..., 2]).max() > 2:
            return False
    return True


def default_input_size(width: int, height: int, area: int = 160 * 160, multiple: int = 32) -> tuple[int, int]:
    """An input size with about `area` pixels, the images' aspect ratio and sides divisible by `multiple`."""
    scale = (area / (width * height)) ** 0.5
    w = max(multiple, round(width * scale / multiple) * multiple)
    h = max(multiple, round(height * scale / multiple) * multiple)
    return w, h


def to_model_size(frame: np.ndarray, size: tuple[int, int], channels: int) -> np.ndarray:
    """Resize a BGR frame to (width, height) and keep 1 (grey) or 3 channels, as the preprocessor will."""
    resized = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
    if channels == 1:
        return np.asarray(cv2.cvtColor(resized, cv2.COLOR_BGR2GRAY)[..., None])
    return np.asarray(resized)


def load_folder(
    folder: Path, role: str, size: tuple[int, int] | None, channels: int | None, roi: Roi | None
) -> tuple[ImageSet, list[str], tuple[int, int], int]:
    """Read, crop and resize a folder; return the set, warnings, the input size and channel count used."""
    paths, warnings = list_images(folder, role)
    frames, names, more = read_images(paths, role)
    warnings += more
    if not frames:
        raise DataError(f"{role} folder {folder}: none of the {len(paths)} image file(s) could be decoded")
    frames = [crop_roi(f, roi, n) for f, n in zip(frames, names)]
    warnings += size_warnings(frames, role)
    if size is None:
        widths, heights = zip(*[(f.shape[1], f.shape[0]) for f in frames])
        size = default_input_size(int(np.median(widths)), int(np.median(heights)))
    if channels is None:
        channels = 1 if is_gray(frames) else 3
    images = np.stack([to_model_size(f, size, channels) for f in frames])
    sizes = [(f.shape[1], f.shape[0]) for f in frames]
    return ImageSet(images, names, sizes), warnings, size, channels
