"""Object detection decoders (YOLOv5, YOLOv8/11, end-to-end YOLO, YOLOX, TFLite SSD) and a vectorised class-aware NMS.

Every decoder turns a model's raw float outputs into `Detections` per image, with boxes as
x1, y1, x2, y2 in model-input pixels; the task maps them back to the frame with its Letterbox.
Which decoder runs is the manifest's ``decoder`` field; its knobs are the manifest's
``params`` and ``thresholds`` (see `DecodeSpec.from_manifest`), so a user's own export runs with a
manifest and no code change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from edge_agent.errors import ModelError
from edge_agent.runtime.base import Runtime
from edge_agent.runtime.manifest import Manifest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detections:
    """Boxes (n x 4, x1 y1 x2 y2), scores (n) and class ids (n) of one image, best score first."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def centres(self) -> np.ndarray:
        return np.stack([(self.boxes[:, 0] + self.boxes[:, 2]) / 2, (self.boxes[:, 1] + self.boxes[:, 3]) / 2], 1)


@dataclass(frozen=True)
class DecodeSpec:
    """What a decoder needs to know about the model and how strict to be.

    The manifest keys that set each field are listed in `from_manifest`.
    """

    input_width: int
    input_height: int
    num_classes: int | None = None
    score_threshold: float = 0.25
    iou_threshold: float = 0.5
    nested_threshold: float | None = None
    pre_nms_top_k: int = 3000
    max_detections: int = 300
    class_agnostic: bool = False
    normalized_boxes: bool = False
    label_offset: int = 0
    ssd_outputs: tuple[str, ...] = ("boxes", "classes", "scores", "count")
    strides: tuple[int, ...] = (8, 16, 32)

    @staticmethod
    def from_manifest(manifest: Manifest, **overrides: Any) -> DecodeSpec:
        """thresholds: score, iou, nested (see `nms`); params: normalized_boxes, pre_nms_top_k, max_detections,
        class_agnostic, label_offset, ssd_outputs (names of the four SSD outputs in order), strides (YOLOX)."""
        spec = manifest.inputs[0]
        if spec.layout == "NCHW" and len(spec.shape) == 4:
            height, width = spec.shape[2], spec.shape[3]
        elif spec.layout == "NHWC" and len(spec.shape) == 4:
            height, width = spec.shape[1], spec.shape[2]
        else:
            raise ModelError(f"model {manifest.name!r}: a detector needs an NCHW or NHWC image input")
        if height is None or width is None:
            raise ModelError(f"model {manifest.name!r}: a detector needs a fixed input height and width")
        for key in ("score", "iou", "nested"):
            value = manifest.thresholds.get(key)
            if value is not None and not 0 < value <= 1:
                raise ModelError(f"model {manifest.name!r}: manifest.yaml thresholds.{key} is {value}; a detector's "
                                 f"{key} threshold lies above 0 and at most 1")  # fmt: skip
        params = manifest.params
        values: dict[str, Any] = {
            "input_width": width,
            "input_height": height,
            "num_classes": len(manifest.labels) or None,
            "score_threshold": manifest.thresholds.get("score", 0.25),
            "iou_threshold": manifest.thresholds.get("iou", 0.5),
            "nested_threshold": manifest.thresholds.get("nested"),
        }
        for key in ("pre_nms_top_k", "max_detections", "class_agnostic", "normalized_boxes", "label_offset"):
            if key in params:
                values[key] = params[key]
        for key in ("ssd_outputs", "strides"):
            if key in params:
                values[key] = tuple(params[key])
        values.update(overrides)
        return DecodeSpec(**values)

    def with_threshold(self, score: float) -> DecodeSpec:
        return replace(self, score_threshold=score)

    def for_input(self, height: int, width: int) -> DecodeSpec:
        """The same spec for a model input of this size (a file that takes any size, fed a padded frame)."""
        if (height, width) == (self.input_height, self.input_width):
            return self
        return replace(self, input_height=height, input_width=width)


def input_multiple(manifest: Manifest, runtime: Runtime, spec: DecodeSpec) -> int | None:
    """For a detector whose file takes any input height and width (the manifest's size is then the size frames
    are fitted into): the multiple to pad frames to, its largest stride. None for a file of one fixed size."""
    shape = runtime.inputs[0].shape
    if len(shape) != 4:
        return None
    free = (shape[2], shape[3]) if manifest.inputs[0].layout == "NCHW" else (shape[1], shape[2])
    return max(spec.strides) if free == (None, None) else None


# ---------------------------------------------------------------- boxes and NMS


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    half = xywh[:, 2:4] / 2
    return np.concatenate([xywh[:, 0:2] - half, xywh[:, 0:2] + half], axis=1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a) x len(b)) of xyxy boxes."""
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.asarray(inter / np.maximum(union, 1e-9), dtype=np.float32)


def _sweep_counts(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order along one axis, and for each box how many later boxes start before it ends."""
    order = np.argsort(starts, kind="stable")
    first_after = np.searchsorted(starts[order], ends[order], side="left")
    return order, np.maximum(first_after - np.arange(1, len(order) + 1), 0)


@dataclass(frozen=True)
class Sweep:
    """Boxes as contiguous coordinate columns, ordered along the axis that gives fewer candidate pairs."""

    x1: np.ndarray
    y1: np.ndarray
    x2: np.ndarray
    y2: np.ndarray
    order: np.ndarray
    counts: np.ndarray  # for each box in order, how many later boxes start before it ends

    @staticmethod
    def of(boxes: np.ndarray) -> Sweep:
        x1, y1, x2, y2 = (np.ascontiguousarray(boxes[:, k], dtype=np.float32) for k in range(4))
        order, counts = _sweep_counts(x1, x2)
        order_y, counts_y = _sweep_counts(y1, y2)
        if counts_y.sum() < counts.sum():
            order, counts = order_y, counts_y
        return Sweep(x1, y1, x2, y2, order, counts)

    @property
    def candidates(self) -> int:
        return int(self.counts.sum())


def overlapping_pairs(
    boxes: np.ndarray, iou_threshold: float, sweep: Sweep | None = None, nested_threshold: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) of xyxy boxes whose IoU exceeds the threshold, or, with `nested_threshold`, where more
    than that share of the box with the higher index lies inside the other (boxes ranked best first).

    Boxes are swept along one axis: a box is compared only with the boxes that start before it ends
    there, so a dense shelf costs about (neighbours x boxes) IoUs instead of a full n x n matrix. The
    axis with fewer such pairs is used (shelf rows overlap in x, columns of facings in y). The IoUs
    are taken on contiguous coordinate columns (gathers of 1-D arrays, not of rows of an n x 4 array).
    """
    s = sweep or Sweep.of(boxes)
    counts = s.counts
    position = np.repeat(np.arange(len(s.order)), counts)
    offsets = np.arange(s.candidates) - np.repeat(np.cumsum(counts) - counts, counts)
    first, second = s.order[position], s.order[position + 1 + offsets]
    iw = np.minimum(s.x2[first], s.x2[second])
    iw -= np.maximum(s.x1[first], s.x1[second])
    ih = np.minimum(s.y2[first], s.y2[second])
    ih -= np.maximum(s.y1[first], s.y1[second])
    inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
    area = (s.x2 - s.x1) * (s.y2 - s.y1)
    iou = inter / np.maximum(area[first] + area[second] - inter, 1e-9)
    hit = iou > iou_threshold
    if nested_threshold is not None:
        hit |= inter > nested_threshold * np.maximum(area[np.maximum(first, second)], 1e-9)
    return first[hit], second[hit]


MAX_ROUNDS = 32  # chains of boxes that each suppress the next are short on real frames; longer ones go one by one
# Below FEW_BOXES candidates, or above PAIRS_PER_BOX swept pairs per box (large boxes piled on each other), OpenCV's
# NMSBoxes is faster: 0.016 against 0.13 ms for 20 boxes, 38 against 84 ms for 3,000 boxes with 450 pairs each.
FEW_BOXES = 48
PAIRS_PER_BOX = 128


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    iou_threshold: float,
    *,
    class_agnostic: bool = False,
    max_detections: int = 300,
    nested_threshold: float | None = None,
) -> np.ndarray:
    """Indices kept by exact greedy NMS (suppress when IoU > threshold), best score first, ties: lower index first.

    With `nested_threshold` a box is also suppressed when more than that share of its area lies inside a kept
    box that scores better (a detector's box on one part of a large package, or one package split in two boxes
    of unequal size, which overlap less than the IoU threshold). SAHI's intersection-over-smaller rule is close;
    this one asks only of the worse box, so a better small box is never removed by a worse big one around it.

    Only boxes that overlap are ever compared (`overlapping_pairs`); classes are kept apart by shifting each
    class along x to its own stretch of the plane. The greedy pass is then decided in a few vectorised rounds
    (`greedy_keep`) instead of one box at a time: on a dense shelf (457 candidates, 221 kept) 0.25 ms against
    0.7-0.9 ms for OpenCV's NMSBoxesBatched, which compares every candidate with every kept box (OpenCV still
    takes a few boxes, and piles of large boxes, where it is faster; both give the same indices). There is no
    truncation inside: callers cap candidates with a score filter and top-k beforehand, sized for dense shelves
    (FIELD_NOTES: a top-k inside NMS drops valid boxes).
    """
    n = boxes.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    opencv = _CV2_NMS is not None and nested_threshold is None  # OpenCV knows IoU only
    if n < FEW_BOXES and opencv:
        return _opencv_nms(boxes, scores, classes, iou_threshold, class_agnostic)[:max_detections]
    order = np.argsort(-scores, kind="stable")
    work = boxes[order].astype(np.float32)
    if not class_agnostic:
        span = float(np.abs(work).max()) * 2 + 1
        shift = classes[order].astype(np.float32) * np.float32(span)
        work[:, 0] += shift
        work[:, 2] += shift
    sweep = Sweep.of(work)
    if sweep.candidates > PAIRS_PER_BOX * n and opencv:
        return _opencv_nms(boxes, scores, classes, iou_threshold, class_agnostic)[:max_detections]
    a, b = overlapping_pairs(work, iou_threshold, sweep, nested_threshold)  # indices are ranks: lower is better
    kept = greedy_keep(n, np.minimum(a, b), np.maximum(a, b))
    return np.asarray(order[kept][:max_detections], dtype=np.int64)


def _opencv_nms(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float, class_agnostic: bool
) -> np.ndarray:  # fmt: skip
    """OpenCV's greedy pass (the same rule and tie order, double-precision rectangles)."""
    rects = np.empty((boxes.shape[0], 4), np.float64)
    rects[:, :2] = boxes[:, :2]
    rects[:, 2:] = boxes[:, 2:] - boxes[:, :2]
    # Candidates arrive score-filtered already; OpenCV's own filter (`score > 0`) only drops zero scores.
    if class_agnostic:
        kept = _CV2_NMS.NMSBoxes(rects, scores.astype(np.float32), 0.0, iou_threshold)
    else:
        kept = _CV2_NMS.NMSBoxesBatched(rects, scores.astype(np.float32), classes.astype(np.int32), 0.0, iou_threshold)
    return np.asarray(kept, dtype=np.int64).reshape(-1)


def _opencv_dnn() -> Any:
    try:
        import cv2

        return cv2.dnn if hasattr(cv2, "dnn") and hasattr(cv2.dnn, "NMSBoxesBatched") else None
    except ImportError:
        return None


_CV2_NMS = _opencv_dnn()


def greedy_keep(n: int, better: np.ndarray, worse: np.ndarray) -> np.ndarray:
    """Which of n ranked boxes greedy NMS keeps, given the overlapping pairs (better rank, worse rank).

    A box's fate depends only on the better boxes that overlap it: it is kept once all of them are
    suppressed, and suppressed once one of them is kept. Each round settles every box whose better
    neighbours are all settled (at least the best unsettled box), with array operations over the pairs.
    """
    kept = np.zeros(n, bool)
    suppressed = np.zeros(n, bool)
    for _ in range(MAX_ROUNDS):
        blocked = np.zeros(n, bool)
        blocked[worse[~suppressed[better]]] = True  # a better neighbour is kept or still open
        new = ~(kept | suppressed | blocked)
        if not new.any():
            return kept
        kept |= new
        suppressed[worse[kept[better]]] = True
    if (kept | suppressed).all():
        return kept
    return _greedy_one_by_one(n, better, worse)


def _greedy_one_by_one(n: int, better: np.ndarray, worse: np.ndarray) -> np.ndarray:
    """The same decision box by box, for the rare long chain (each kept box suppresses its worse neighbours)."""
    by_better = np.argsort(better, kind="stable")
    better, worse = better[by_better], worse[by_better]
    heads, starts = np.unique(better, return_index=True)
    stops = np.append(starts[1:], len(better))
    suppressed = np.zeros(n, dtype=bool)
    for head, start, stop in zip(heads.tolist(), starts.tolist(), stops.tolist()):
        if not suppressed[head]:
            suppressed[worse[start:stop]] = True
    keep: np.ndarray = ~suppressed
    return keep


def select(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, spec: DecodeSpec, *, filtered: bool = False
) -> Detections:
    """Score filter (skipped when the decoder has `filtered` already), top-k, NMS: the common tail of every
    decoder that needs suppression."""
    if not filtered:
        keep = scores >= spec.score_threshold
        boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
    if scores.shape[0] > spec.pre_nms_top_k:
        top = np.argpartition(-scores, spec.pre_nms_top_k - 1)[: spec.pre_nms_top_k]
        boxes, scores, classes = boxes[top], scores[top], classes[top]
    kept = nms(
        boxes,
        scores,
        classes,
        spec.iou_threshold,
        class_agnostic=spec.class_agnostic,
        max_detections=spec.max_detections,
        nested_threshold=spec.nested_threshold,
    )
    # Fancy indexing copies already; asarray converts only where the dtype differs.
    return Detections(np.asarray(boxes[kept], np.float32), np.asarray(scores[kept], np.float32),
                      np.asarray(classes[kept], np.int64))  # fmt: skip


def _to_pixels(boxes: np.ndarray, spec: DecodeSpec) -> np.ndarray:
    if not spec.normalized_boxes:
        return boxes
    scale = np.array([spec.input_width, spec.input_height] * 2, dtype=np.float32)
    return boxes * scale


# ---------------------------------------------------------------- decoders


def _only_output(outputs: Sequence[np.ndarray], name: str) -> np.ndarray:
    if len(outputs) != 1:
        raise ModelError(f"decoder {name} expects one output tensor, the model returned {len(outputs)}")
    out = np.asarray(outputs[0], dtype=np.float32)
    if out.ndim != 3:
        raise ModelError(f"decoder {name} expects a 3-D output [batch, ., .], got shape {list(out.shape)}")
    return out


def _check_classes(found: int, spec: DecodeSpec, name: str, layout: str) -> None:
    if found < 1 or (spec.num_classes is not None and found != spec.num_classes):
        want = spec.num_classes if spec.num_classes is not None else ">= 1"
        raise ModelError(
            f"decoder {name}: output layout {layout} gives {found} class column(s) but the manifest has {want} "
            "labels; check the decoder name and labels in manifest.yaml"
        )


def decode_yolov5(outputs: Sequence[np.ndarray], spec: DecodeSpec) -> list[Detections]:
    """YOLOv5/YOLOv7 style: [batch, N, 5 + nc] rows of cx, cy, w, h, objectness, class scores."""
    out = _only_output(outputs, "yolov5")
    _check_classes(out.shape[2] - 5, spec, "yolov5", "[1, N, 5+nc]")
    return [_objectness_rows(image_rows, spec) for image_rows in out]


def _objectness_rows(image_rows: np.ndarray, spec: DecodeSpec, grid: np.ndarray | None = None) -> Detections:
    """Rows of cx, cy, w, h, objectness, class scores; with a grid (YOLOX), boxes are still cell offsets."""
    # Objectness alone bounds the final score: drop most rows before touching the class columns.
    passing = np.flatnonzero(image_rows[:, 4] >= spec.score_threshold)
    rows = image_rows[passing]
    if grid is not None:
        rows = rows.copy()
        cells = grid[passing]
        rows[:, 0:2] = (rows[:, 0:2] + cells[:, 0:2]) * cells[:, 2:3]
        rows[:, 2:4] = np.exp(np.minimum(rows[:, 2:4], 10.0)) * cells[:, 2:3]
    cls_scores = rows[:, 5:] * rows[:, 4:5]
    classes = cls_scores.argmax(axis=1)
    scores = cls_scores[np.arange(len(rows)), classes]
    boxes = _to_pixels(xywh_to_xyxy(rows[:, :4]), spec)
    return select(boxes, scores, classes, spec)


_GRIDS: dict[tuple[int, int, tuple[int, ...]], np.ndarray] = {}


def yolox_grid(width: int, height: int, strides: tuple[int, ...]) -> np.ndarray:
    """Rows of cell x, cell y, stride for every output row of a YOLOX head (levels in stride order, row-major)."""
    key = (width, height, strides)
    if key not in _GRIDS:
        levels = []
        for s in strides:
            ys, xs = np.meshgrid(np.arange(height // s), np.arange(width // s), indexing="ij")
            levels.append(np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, s)], 1))
        _GRIDS[key] = np.concatenate(levels).astype(np.float32)
    return _GRIDS[key]


def decode_yolox(outputs: Sequence[np.ndarray], spec: DecodeSpec) -> list[Detections]:
    """YOLOX (Megvii) exports: [batch, N, 5 + nc] rows of cell offsets x, y, log w, log h, objectness, class
    scores over the cells of strides ``params.strides`` (8, 16, 32); sigmoids are inside the graph."""
    out = _only_output(outputs, "yolox")
    _check_classes(out.shape[2] - 5, spec, "yolox", "[1, N, 5+nc]")
    grid = yolox_grid(spec.input_width, spec.input_height, spec.strides)
    if grid.shape[0] != out.shape[1]:
        raise ModelError(
            f"decoder yolox: {out.shape[1]} output rows, but a {spec.input_width}x{spec.input_height} input with "
            f"strides {list(spec.strides)} has {grid.shape[0]} cells; set params.strides in manifest.yaml"
        )
    return [_objectness_rows(image_rows, spec, grid) for image_rows in out]


def decode_yolov8(outputs: Sequence[np.ndarray], spec: DecodeSpec) -> list[Detections]:
    """YOLOv8 / YOLO11 style: [batch, 4 + nc, N] columns of cx, cy, w, h and class scores (no objectness)."""
    out = _only_output(outputs, "yolov8")
    _check_classes(out.shape[1] - 4, spec, "yolov8", "[1, 4+nc, N]")
    results = []
    for cols in out:
        cls_scores = cols[4:]
        # A row-wise max is one vectorised pass; the argmax (strided, slow) runs only over rows that pass.
        best = cls_scores.max(axis=0) if cls_scores.shape[0] > 1 else cls_scores[0]
        keep = np.flatnonzero(best >= spec.score_threshold)
        candidates = cls_scores[:, keep]
        classes = candidates.argmax(axis=0) if candidates.shape[0] > 1 else np.zeros(len(keep), np.int64)
        boxes = _to_pixels(xywh_to_xyxy(cols[:4, keep].T), spec)
        results.append(select(boxes, best[keep], classes, spec, filtered=True))
    return results


def decode_yolo_e2e(outputs: Sequence[np.ndarray], spec: DecodeSpec) -> list[Detections]:
    """End-to-end YOLO (YOLOv10, YOLO26 end2end): [batch, K, 6] rows of x1, y1, x2, y2, score, class; no NMS."""
    out = _only_output(outputs, "yolo_e2e")
    if out.shape[2] != 6:
        raise ModelError(f"decoder yolo_e2e expects [1, K, 6] (x1 y1 x2 y2 score class), got {list(out.shape)}")
    results = []
    for image_rows in out:
        rows = image_rows[image_rows[:, 4] >= spec.score_threshold]
        rows = rows[np.argsort(-rows[:, 4], kind="stable")][: spec.max_detections]
        classes = rows[:, 5].astype(np.int64) - spec.label_offset
        boxes = _to_pixels(rows[:, :4], spec).astype(np.float32)
        results.append(Detections(boxes, rows[:, 4].astype(np.float32), classes))
    return results


def decode_ssd_tflite(outputs: Sequence[np.ndarray], spec: DecodeSpec) -> list[Detections]:
    """TFLite_Detection_PostProcess: boxes [1, K, 4] (ymin xmin ymax xmax, 0..1), classes [1, K],
    scores [1, K], count [1]; the order of the four outputs is the manifest's ``ssd_outputs``."""
    if len(outputs) != 4 or sorted(spec.ssd_outputs) != ["boxes", "classes", "count", "scores"]:
        raise ModelError(
            f"decoder ssd_tflite expects 4 outputs named by params.ssd_outputs {list(spec.ssd_outputs)}; "
            f"the model returned {len(outputs)}"
        )
    named = {name: np.asarray(out, dtype=np.float32) for name, out in zip(spec.ssd_outputs, outputs)}
    boxes_all, classes_all, scores_all = named["boxes"], named["classes"], named["scores"]
    if boxes_all.ndim != 3 or boxes_all.shape[2] != 4 or scores_all.shape != boxes_all.shape[:2]:
        raise ModelError(
            f"decoder ssd_tflite: boxes {list(boxes_all.shape)} / scores {list(scores_all.shape)} are not "
            "[1, K, 4] / [1, K]; check params.ssd_outputs order in manifest.yaml"
        )
    counts = named["count"].reshape(boxes_all.shape[0], -1)[:, 0]
    scale = np.array([spec.input_width, spec.input_height] * 2, dtype=np.float32)
    results = []
    for boxes_yx, classes, scores, count in zip(boxes_all, classes_all, scores_all, counts):
        n = int(np.clip(count, 0, len(scores)))
        keep = np.flatnonzero(scores[:n] >= spec.score_threshold)
        keep = keep[np.argsort(-scores[keep], kind="stable")][: spec.max_detections]
        boxes = boxes_yx[keep][:, [1, 0, 3, 2]] * scale
        ids = np.rint(classes[keep]).astype(np.int64) - spec.label_offset
        results.append(Detections(boxes.astype(np.float32), scores[keep].astype(np.float32), ids))
    return results


Decoder = Callable[[Sequence[np.ndarray], DecodeSpec], list[Detections]]
DECODERS: dict[str, Decoder] = {
    "yolov5": decode_yolov5,
    "yolov8": decode_yolov8,
    "yolo11": decode_yolov8,
    "yolo_e2e": decode_yolo_e2e,
    "yolox": decode_yolox,
    "ssd_tflite": decode_ssd_tflite,
}


def get_decoder(name: str) -> Decoder:
    """The decoder named in a manifest; ModelError listing the known ones otherwise."""
    try:
        return DECODERS[name]
    except KeyError:
        raise ModelError(f"unknown detection decoder {name!r}; known: {', '.join(sorted(DECODERS))}") from None
