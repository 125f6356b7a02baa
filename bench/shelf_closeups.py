"""How the shelf detector does on real close-up photos: the held-out in-store package photos of the Grocery Store
Dataset (a milk, juice or yoghurt pack held up to the camera or on its shelf, often with more packs behind it).

    python -m bench.shelf_closeups --data ../shared/data/grocery-store --models models/shelf-detector OTHER_MODEL

The data set labels each photo with its product's class but draws no box. The box of the photographed product is
found here by matching the class's iconic picture (the pack's front on white, shipped with the data set) into the
photo: SIFT features, a RANSAC homography, and the projected outline kept only when it is convex, large and held
by at least --inliers matches. For those photos it reports how often a box covers the product (IoU >= 0.5), how
often two or more box centres fall on it (one product split), and the boxes elsewhere per photo (packs behind the
product are real products too, so that figure is not a false-positive rate). For every photo it reports boxes per
photo and photos with no box at all. Photos are the held-out 20% of the composer's hash split, never trained on
(the same products' other photos are).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_agent.config import OnnxRuntimeConfig
from edge_agent.runtime.manifest import load_manifest
from edge_agent.runtime.registry import load_model
from edge_agent.tasks.detection import DecodeSpec, box_iou, get_decoder
from edge_agent.tasks.preprocess import ImagePreprocessor
from edge_agent.tasks.shelf.compose import _in_split
from edge_agent.tasks.shelf.task import to_frame

Features = tuple[list[cv2.KeyPoint], np.ndarray | None]  # SIFT key points and descriptors
MATCH_SIDE = 700  # photos are matched at this longest side (348 px as published: too few features)


def held_out_packages(data: Path) -> list[Path]:
    return sorted(p for p in (data / "train" / "Packages").rglob("*.jpg") if _in_split(p, "heldout", 0.2))


@dataclass(frozen=True)
class Matcher:
    """Finds a product's iconic picture in a photo."""

    sift: cv2.SIFT
    min_inliers: int

    def features(self, image: np.ndarray) -> Features:
        return self.sift.detectAndCompute(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), None)  # type: ignore[return-value]

    def locate(self, icon: np.ndarray, icon_features: Features, photo: np.ndarray) -> np.ndarray | None:
        """The product's box (xyxy, photo pixels), or None when the match is not trusted."""
        scale = MATCH_SIDE / max(photo.shape[:2])
        (kp1, d1), (kp2, d2) = icon_features, self.features(cv2.resize(photo, None, fx=scale, fy=scale))
        if d1 is None or d2 is None or len(kp2) < 2:
            return None
        pairs = [p for p in cv2.BFMatcher().knnMatch(d1, d2, k=2) if len(p) == 2]
        good = [a for a, b in pairs if a.distance < 0.75 * b.distance]
        if len(good) < self.min_inliers:
            return None
        src = np.array([kp1[g.queryIdx].pt for g in good], np.float32)
        dst = np.array([kp2[g.trainIdx].pt for g in good], np.float32)
        homography, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 5.0)
        if homography is None or int(inliers.sum()) < self.min_inliers:
            return None
        h, w = icon.shape[:2]
        corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32).reshape(-1, 1, 2)
        quad = cv2.perspectiveTransform(corners, homography).reshape(-1, 2) / scale
        return _plausible(quad, photo.shape)


def _plausible(quad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """A convex outline of at least 2% of the photo that fills half of its box, clipped to the photo."""
    if not cv2.isContourConvex(quad.astype(np.float32).reshape(-1, 1, 2)):
        return None
    (x1, y1), (x2, y2) = quad.min(0), quad.max(0)
    area = cv2.contourArea(quad.astype(np.float32))
    if area < 0.02 * shape[0] * shape[1] or area < 0.5 * (x2 - x1) * (y2 - y1) or x2 - x1 > 1.5 * shape[1]:
        return None
    return np.array([max(0, x1), max(0, y1), min(shape[1], x2), min(shape[0], y2)], np.float32)


def icon_of(data: Path, photo: Path) -> np.ndarray | None:
    """The class's iconic picture, cut to the product (its white surround removed)."""
    name = photo.parent.name
    path = data / "iconic-images-and-descriptions" / "Packages" / photo.parent.parent.name / name / f"{name}_Iconic.jpg"
    image = cv2.imread(str(path))
    if image is None:
        return None
    scale = 500 / max(image.shape[:2])
    image = cv2.resize(image, None, fx=scale, fy=scale)
    x, y, w, h = cv2.boundingRect((image.min(axis=2) < 235).astype(np.uint8))
    return image[y : y + h, x : x + w]


def label_photos(data: Path, photos: list[Path], min_inliers: int) -> dict[Path, np.ndarray]:
    """The photographed product's box for every photo whose match is trusted."""
    matcher = Matcher(cv2.SIFT_create(nfeatures=3000), min_inliers)  # type: ignore[attr-defined]
    icons: dict[str, tuple[np.ndarray, Features] | None] = {}  # each class's picture and features, read once
    boxes: dict[Path, np.ndarray] = {}
    for path in photos:
        if path.parent.name not in icons:
            icon = icon_of(data, path)
            icons[path.parent.name] = (icon, matcher.features(icon)) if icon is not None else None
        known, photo = icons[path.parent.name], cv2.imread(str(path))
        box = matcher.locate(*known, photo) if known is not None and photo is not None else None
        if box is not None:
            boxes[path] = box
    return boxes


@dataclass
class Tally:
    photos: int = 0
    boxes: int = 0
    no_box: int = 0
    labelled: int = 0
    found: int = 0
    split: int = 0
    elsewhere: int = 0

    def add(self, boxes: np.ndarray, truth: np.ndarray | None) -> None:
        self.photos += 1
        self.boxes += len(boxes)
        self.no_box += int(len(boxes) == 0)
        if truth is None:
            return
        self.labelled += 1
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        on = np.all((centres > truth[:2]) & (centres < truth[2:]), axis=1)
        self.found += int(bool(len(boxes)) and bool((box_iou(truth[None], boxes)[0] >= 0.5).any()))
        self.split += int(on.sum() >= 2)
        self.elsewhere += int((~on).sum())

    def row(self, name: str) -> str:
        n, k = max(self.photos, 1), max(self.labelled, 1)
        return (
            f"| {name} | {self.boxes / n:.2f} | {self.no_box} | {self.labelled} | {self.found / k:.1%} "
            f"| {self.split / k:.1%} | {self.elsewhere / k:.2f} |"
        )


def measure(model_dir: Path, variant: str, photos: list[Path], truth: dict[Path, np.ndarray]) -> str:
    manifest = load_manifest(model_dir)
    model = load_model(model_dir, variant, OnnxRuntimeConfig(intra_op_threads=1))
    spec, decoder = DecodeSpec.from_manifest(manifest), get_decoder(manifest.decoder)
    pre = ImagePreprocessor(manifest.inputs[0], letterbox=True)
    tally = Tally()
    for path in photos:
        image = cv2.imread(str(path))
        if image is None:
            continue
        buffer, box = pre(image)
        dets = to_frame(decoder(model.runtime.run([buffer]), spec)[0], box, image.shape[1], image.shape[0])
        tally.add(dets.boxes, truth.get(path))
    model.runtime.close()
    return tally.row(f"{manifest.name} {manifest.version} | {variant} | {spec.score_threshold:g}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the Grocery Store Dataset folder")
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="model folders to compare")
    parser.add_argument("--variants", nargs="+", default=["onnx-fp32", "onnx-int8"], help="ONNX variants to run")
    parser.add_argument("--inliers", type=int, default=40, help="matches a located product needs")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    photos = held_out_packages(args.data)
    truth = label_photos(args.data, photos, args.inliers)
    print(f"{len(photos)} held-out package photos, the product located in {len(truth)}\n")
    print(
        "| model | variant | score threshold | boxes / photo | photos with no box | located | product found "
        "(IoU >= 0.5) | split (2+ box centres on it) | boxes elsewhere / located photo |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for model_dir in args.models:
        files = load_manifest(model_dir).files
        for variant in [v for v in args.variants if v in files and files[v].format == "onnx"]:
            print(measure(model_dir, variant, photos, truth), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
