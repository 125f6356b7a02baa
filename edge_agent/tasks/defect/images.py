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


MASK_FOLDERS = frozenset({"mask", "masks", "gt", "ground_truth", "groundtruth", "label", "labels", "annotations"})
MASK_SUFFIXES = ("_mask", "_masks", "_label", "_labels", "_gt", "_seg")


def is_mask_name(path: Path) -> bool:
    """A file that data sets and labelling tools write beside the images: Part0_label.bmp, 000_mask.png."""
    return path.stem.lower().endswith(MASK_SUFFIXES)


def _mask_folder_files(folder: Path) -> int:
    return sum(1 for d in folder.iterdir() if d.is_dir() and d.name.lower() in MASK_FOLDERS for _ in d.rglob("*.*"))


def _shown(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def list_images(folder: Path, role: str) -> tuple[list[Path], list[str], int]:
    """Image files in `folder` (sorted), warnings about other files, and how many mask or label files were
    skipped (`*_mask.png`, `*_label.bmp`, files in a `masks/` or `gt/` sub-folder); DataError if no image."""
    if not folder.exists():
        raise DataError(f"{role} folder {folder} does not exist")
    if not folder.is_dir():
        raise DataError(f"{role} folder {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    pictures = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    images = [p for p in pictures if not is_mask_name(p)]
    masks = len(pictures) - len(images) + _mask_folder_files(folder)
    others = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    notes = [f"skipped {len(others)} file(s) that are not images ({_shown(others)})"] if others else []
    if not images:
        if masks:
            notes.append(f"skipped {masks} mask or label file(s)")
        raise DataError(
            f"{role} folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            + (f"; {'; '.join(notes)}" if notes else "")
            + f"; put photos of {role} parts there"
        )
    return images, [f"{role} folder {folder}: {'; '.join(notes)}"] if notes else [], masks


def mask_warning(folder: Path, role: str, count: int) -> list[str]:
    """The one warning about every mask or label file skipped, by name, by folder or by content."""
    if not count:
        return []
    return [f"{role} folder {folder}: skipped {count} mask or label file(s) (*_mask/*_label names, masks/ or gt/"
            " folders, all-black or black-and-white images)"]  # fmt: skip


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


def _looks_like_mask(frame: np.ndarray) -> bool:
    """All black, or only pure black and white: a segmentation mask, not a photo of a part."""
    small = frame[::4, ::4]
    return int(small.max()) == 0 or bool(np.isin(small, (0, 255)).all())


def read_images(paths: list[Path], role: str) -> tuple[list[np.ndarray], list[str], list[str], int]:
    """Decode files once: grey files stay one channel (h x w), colour ones BGR. Undecodable files are skipped
    with a warning; masks (all-black or black-and-white images) are skipped and counted."""
    frames, names, bad, masks = [], [], [], []
    for path in paths:
        frame = cv2.imread(str(path), cv2.IMREAD_ANYCOLOR)
        if frame is None or frame.size == 0:
            bad.append(path.name)
        elif _looks_like_mask(frame):
            masks.append(path.name)
        else:
            frames.append(frame)
            names.append(path.name)
    warnings = []
    if bad:
        warnings.append(f"{role}: skipped {len(bad)} file(s) that could not be decoded as images ({_shown(bad)})")
    return frames, names, warnings, len(masks)


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
    """True when every frame is one channel or has equal B, G and R (a monochrome camera saved as colour)."""
    for frame in frames[:50]:
        if frame.ndim == 2:
            continue
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
    if resized.ndim == 2:
        return np.asarray(resized[..., None] if channels == 1 else cv2.cvtColor(resized, cv2.COLOR_GRAY2BGR))
    if channels == 1:
        return np.asarray(cv2.cvtColor(resized, cv2.COLOR_BGR2GRAY)[..., None])
    return np.asarray(resized)


def load_folder(
    folder: Path, role: str, size: tuple[int, int] | None, channels: int | None, roi: Roi | None
) -> tuple[ImageSet, list[str], tuple[int, int], int]:
    """Read, crop and resize a folder; return the set, warnings, the input size and channel count used."""
    paths, warnings, masks = list_images(folder, role)
    frames, names, more, black = read_images(paths, role)
    warnings += more + mask_warning(folder, role, masks + black)
    if not frames:
        raise DataError(
            f"{role} folder {folder}: none of its {len(paths)} image file(s) is a photo of a part (masks or"
            f" undecodable files); put photos of {role} parts there"
        )
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
