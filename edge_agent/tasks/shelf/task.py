"""The shelf inventory task: letterbox -> detector -> manifest-named decoder -> per-zone counts and stock events."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from edge_agent.errors import DataError, ModelError
from edge_agent.messages import ResultData, ShelfData, ZoneCount
from edge_agent.runtime.registry import LoadedModel
from edge_agent.tasks.base import Item, Task, TaskContext, TaskOutput
from edge_agent.tasks.detection import DecodeSpec, Detections, get_decoder, input_multiple
from edge_agent.tasks.preprocess import ImagePreprocessor, Letterbox
from edge_agent.tasks.shelf.config import ShelfTaskConfig
from edge_agent.tasks.shelf.dashboard import ShelfDashboard
from edge_agent.tasks.shelf.draw import render, render_region
from edge_agent.tasks.shelf.logic import ShelfCounter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShelfFrame:
    """Detections of one frame, boxes in frame pixels; `usable` is False for blank frames."""

    detections: Detections
    width: int
    height: int
    usable: bool = True


def frame_contrast(frame: np.ndarray) -> float:
    """Brightness standard deviation over a sparse pixel grid: near 0 for a black, white or covered view.

    A strided view (about 4,000 pixels of a 720p frame) costs microseconds where a resize costs a millisecond.
    """
    step = max(1, min(frame.shape[0], frame.shape[1]) // 60)
    sample = frame[::step, ::step].astype(np.float32)
    brightness = sample.mean(axis=2) if sample.ndim == 3 else sample
    return float(brightness.std())


def to_frame(detections: Detections, box: Letterbox, width: int, height: int) -> Detections:
    """Boxes from model pixels to frame pixels, clipped to the frame; boxes left without area are dropped."""
    boxes = box.to_frame(detections.boxes)
    np.clip(boxes, 0, np.array([width, height, width, height], np.float32), out=boxes)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if keep.all():
        return Detections(boxes, detections.scores, detections.classes)
    return Detections(boxes[keep], detections.scores[keep], detections.classes[keep])


def counted_classes(wanted: list[str] | None, labels: list[str], model: str) -> np.ndarray | None:
    """Class ids of the labels to count; ModelError naming task.count_labels for a label the model lacks."""
    if wanted is None:
        return None
    unknown = [name for name in wanted if name not in labels]
    if unknown:
        raise ModelError(
            f"task.count_labels: {', '.join(unknown)} not among the labels of model {model!r} "
            f"({', '.join(labels[:12])}{', ...' if len(labels) > 12 else ''})"
        )
    return np.array([labels.index(name) for name in wanted], np.int64)


def frame_name(item: Item) -> str:
    """What a count is traced back to: the file name of a replayed picture, else source and frame number."""
    if "filename" in item.meta:
        return str(item.meta["filename"])
    return f"{item.source}-{item.index}"


class ShelfTask(Task[ShelfTaskConfig, ShelfFrame]):
    """Counts product facings per configured zone and raises low_stock / out_of_stock / restocked events."""

    kind = "shelf"
    dashboard = ShelfDashboard()
    max_batch = 1

    def __init__(self, config: ShelfTaskConfig, model: LoadedModel, context: TaskContext) -> None:
        super().__init__(config, model, context)
        manifest = model.manifest
        self.decoder = get_decoder(manifest.decoder)
        named = {"score_threshold": config.score_threshold, "iou_threshold": config.iou_threshold,
                 "nested_threshold": config.nested_threshold}  # fmt: skip
        overrides = {key: value for key, value in named.items() if value is not None}
        self.spec = DecodeSpec.from_manifest(manifest, **overrides)
        self.counted = counted_classes(config.count_labels, manifest.labels, manifest.name)
        # A file that takes any size gets the bars of a wide frame cut to its largest stride (1280x720: 416x256).
        rows = input_multiple(manifest, model.runtime, self.spec)
        self.preprocessor = ImagePreprocessor(manifest.inputs[0], letterbox=True, row_multiple=rows)
        self.counter = ShelfCounter(config)
        self._letterbox = Letterbox(1.0, 1.0)
        self._usable = True
        self._last: tuple[np.ndarray, ShelfFrame, list[ZoneCount]] | None = None

    def preprocess(self, items: Sequence[Item]) -> list[np.ndarray]:
        if len(items) != 1:
            raise DataError(f"the shelf task takes one frame at a time, got {len(items)}")
        frame = items[0].data
        if frame.dtype != np.uint8:
            raise DataError(f"frame dtype is {frame.dtype}; the shelf task expects 8-bit BGR frames")
        buffer, self._letterbox = self.preprocessor(frame)
        usable = frame_contrast(frame) >= self.config.min_frame_contrast
        if usable != self._usable:
            log = logger.info if usable else logger.warning
            log(
                "pipeline %s: %s",
                self.context.pipeline,
                "view is back; counting again"
                if usable
                else "frame is blank (lens covered, lights off or a black frame): not counted until the view returns",
            )
        self._usable = usable
        return [buffer]

    def decode(self, outputs: list[np.ndarray], items: Sequence[Item]) -> list[ShelfFrame]:
        height, width = items[0].data.shape[:2]
        spec = self.spec.for_input(self.preprocessor.height, self.preprocessor.width)
        detections = to_frame(self.decoder(outputs, spec)[0], self._letterbox, width, height)
        if self.counted is not None:
            keep = np.isin(detections.classes, self.counted)
            detections = Detections(detections.boxes[keep], detections.scores[keep], detections.classes[keep])
        return [ShelfFrame(detections, width, height, self._usable)]

    def logic(self, decoded: ShelfFrame, item: Item) -> TaskOutput:
        if not decoded.usable:
            return TaskOutput(None)
        boxes = decoded.detections.boxes
        counts, events = self.counter.update(boxes, decoded.width, decoded.height, item.captured_at)
        self._last = (item.data, decoded, counts)
        frame_id = frame_name(item)
        for event in events:
            event.details["frame_id"] = frame_id
            event.snapshot_jpeg = self.zone_snapshot(event.subject)  # the operator judges a picture of the zone
        return TaskOutput(ShelfData(zones=counts, detections=len(decoded.detections), frame_id=frame_id), events)

    def set_threshold(self, name: str, value: float) -> None:
        if not 0 < value < 1:
            raise ValueError(f"threshold {name} must be between 0 and 1, got {value}")
        if name == "score":
            self.spec = self.spec.with_threshold(value)
        elif name == "iou":
            self.spec = replace(self.spec, iou_threshold=value)
        elif name == "nested":
            self.spec = replace(self.spec, nested_threshold=value)
        else:
            raise ValueError(f"task shelf has no threshold {name!r}; it has score, iou and nested")
        logger.info("pipeline %s: %s threshold set to %s", self.context.pipeline, name, value)

    def snapshot(self) -> bytes | None:
        """JPEG of the last counted frame with boxes, zones and counts drawn on it."""
        if self._last is None:
            return None
        frame, decoded, counts = self._last
        zones = self.counter.zones(decoded.width, decoded.height)
        polygons, names = [z.polygon for z in zones], [z.config.name for z in zones]
        return _jpeg(render(frame, decoded.detections.boxes, polygons, names, counts))

    def zone_snapshot(self, zone_name: str, margin: int = 24) -> bytes | None:
        """JPEG of one zone and `margin` pixels around it (boxes, outlines and counts drawn) from the last
        counted frame; the whole frame when there is no such zone."""
        if self._last is None:
            return None
        frame, decoded, counts = self._last
        zones = self.counter.zones(decoded.width, decoded.height)
        zone = next((z for z in zones if z.config.name == zone_name), None)
        if zone is None:
            return self.snapshot()
        x, y, w, h = cv2.boundingRect(np.asarray(zone.polygon, dtype=np.int32))
        height, width = frame.shape[:2]
        region = (max(0, x - margin), max(0, y - margin), min(width, x + w + margin), min(height, y + h + margin))
        polygons, names = [z.polygon for z in zones], [z.config.name for z in zones]
        return _jpeg(render_region(frame, region, decoded.detections.boxes, polygons, names, counts))

    def items_label(self) -> str:
        return "frames"

    def observe(self, data: ResultData) -> Mapping[str, int]:
        """Per-zone count and over-capacity gauges for dashboards."""
        metrics = self.context.metrics
        if metrics is not None and isinstance(data, ShelfData):
            for zone in data.zones:
                metrics.zone_count.labels(self.context.pipeline, zone.zone).set(zone.count)
                metrics.zone_over_capacity.labels(self.context.pipeline, zone.zone).set(int(zone.over_capacity))
        return {}


def _jpeg(image: np.ndarray) -> bytes | None:
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return jpeg.tobytes() if ok else None
