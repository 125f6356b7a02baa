"""The defect task: ROI crop, anomaly model, pass/fail per item, defect events with a heat-map snapshot."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.errors import DataError, ModelError
from edge_agent.messages import DefectData, ResultData
from edge_agent.metrics import AgentMetrics
from edge_agent.runtime.registry import LoadedModel
from edge_agent.tasks.base import EventDraft, Item, Task, TaskContext, TaskOutput
from edge_agent.tasks.defect.config import DefectTaskConfig
from edge_agent.tasks.defect.dashboard import DefectDashboard
from edge_agent.tasks.defect.overlay import bounded_jpeg, defect_box, overlay
from edge_agent.tasks.defect.scoring import scorer_for
from edge_agent.tasks.defect.shifts import ShiftCounter, ShiftSchedule, resolve_timezone
from edge_agent.tasks.defect.trigger import TriggerGate

logger = logging.getLogger(__name__)

Box = tuple[int, int, int, int]


@dataclass
class DefectDecoded:
    """What the model says about one item; `skipped` items (no trigger pending) were not run."""

    score: float = 0.0
    amap: np.ndarray | None = None
    skipped: bool = False


@dataclass
class _Current:
    item_id: str
    roi_image: np.ndarray | None  # None when the item is skipped


class DefectTask(Task[DefectTaskConfig, DefectDecoded]):
    """Judges one item per inference; per-shift counts go to the metrics the context carries."""

    kind = "defect"
    dashboard = DefectDashboard()
    max_batch = 1

    def __init__(self, config: DefectTaskConfig, model: LoadedModel, context: TaskContext) -> None:
        super().__init__(config, model, context)
        manifest = model.manifest
        self._scorer = scorer_for(model)  # patch features + memory bank, or a model that outputs its own map
        threshold = config.threshold if config.threshold is not None else self._scorer.threshold
        if threshold is None:
            raise ModelError(f"model {manifest.name!r} has no thresholds.score; set task.threshold in the config")
        self.threshold = float(threshold)
        roi = config.roi if config.roi is not None else manifest.params.get("roi")
        self.roi: Box | None = tuple(int(v) for v in roi) if roi else None  # type: ignore[assignment]
        self.gate = (
            TriggerGate(config.trigger_timeout_s, config.trigger_delay_s) if config.trigger != "continuous" else None
        )
        self.shifts = ShiftCounter(ShiftSchedule(config.shifts, resolve_timezone(config.timezone)))
        self.metrics: AgentMetrics | None = context.metrics
        self._current = _Current("", None)
        self._last: tuple[np.ndarray, np.ndarray, float] | None = None

    # ------------------------------------------------------------------ stages

    def preprocess(self, items: Sequence[Item]) -> list[np.ndarray]:
        item = items[0]
        item_id = self._item_id(item)
        if item_id is None:
            self._current = _Current("", None)
            return []
        roi_image = self._crop(item.data)
        self._current = _Current(item_id, roi_image)
        return [self._scorer.preprocess(roi_image)]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.model.runtime.run(inputs) if inputs else []

    def decode(self, outputs: list[np.ndarray], items: Sequence[Item]) -> list[DefectDecoded]:
        if not outputs:
            return [DefectDecoded(skipped=True)]
        amap, score = self._scorer.decode(outputs)
        return [DefectDecoded(score, amap)]

    def logic(self, decoded: DefectDecoded, item: Item) -> TaskOutput:
        current = self._current
        if decoded.skipped or decoded.amap is None or current.roi_image is None:
            return TaskOutput(None)
        passed = decoded.score < self.threshold
        tally = self.shifts.record(item.captured_at, passed)
        self._count(tally.key.name, passed, tally.defect_rate)
        roi = current.roi_image
        self._last = (roi, decoded.amap, decoded.score)
        box = None if passed else self._frame_box(decoded.amap, roi)
        data = DefectData(
            item_id=current.item_id, passed=passed, score=round(decoded.score, 6), threshold=self.threshold,
            defect_box=list(box) if box else None,
        )  # fmt: skip
        if passed:
            return TaskOutput(data)
        details = {"score": round(decoded.score, 6), "threshold": self.threshold, "shift": tally.key.name,
                   "shift_day": tally.key.day.isoformat(), "defect_box": list(box) if box else None}  # fmt: skip
        event = EventDraft(
            "defect", subject=current.item_id, severity="critical", details=details,
            snapshot_jpeg=self._snapshot_jpeg(roi, decoded.amap, decoded.score),
        )  # fmt: skip
        return TaskOutput(data, [event])

    def validate_model(self) -> None:
        """One blank item through preprocessing, the model and the scoring, as `check` asks: a memory bank or map
        that does not fit the model's outputs fails here, not on the first part."""
        spec = self.model.manifest.inputs[0]
        h, w = (spec.shape[1], spec.shape[2]) if spec.layout == "NHWC" else (spec.shape[2], spec.shape[3])
        frame = np.zeros((h or 64, w or 64, 3), np.uint8)
        try:
            self._scorer.decode(self.run([self._scorer.preprocess(frame)]))
        except (ValueError, IndexError) as exc:
            raise ModelError(
                f"model {self.model.manifest.name!r}: its scoring does not fit its outputs: {exc}"
            ) from exc

    # ------------------------------------------------------------------ commands

    def set_threshold(self, name: str, value: float) -> None:
        if name not in ("score", "threshold"):
            super().set_threshold(name, value)
        if not value > 0:
            raise ValueError(f"threshold must be > 0, got {value}")
        logger.info("defect threshold %s -> %s", self.threshold, value)
        self.threshold = float(value)

    def observe(self, data: ResultData) -> Mapping[str, int]:
        return {"failed": int(isinstance(data, DefectData) and not data.passed)}

    def figures(self, counts: Mapping[str, int], items: int) -> dict[str, float]:
        failed = counts.get("failed", 0)
        return {"defect_rate": failed / items if items else 0.0, "failed": failed}

    def snapshot(self) -> bytes | None:
        """The last judged item's ROI with its heat map, bounded like event snapshots."""
        if self._last is None:
            return None
        roi, amap, score = self._last
        return self._snapshot_jpeg(roi, amap, score)

    # ------------------------------------------------------------------ helpers

    def _item_id(self, item: Item) -> str | None:
        """The id the item is judged under, or None when a triggered task has no trigger for this frame."""
        if "trigger_id" in item.meta:
            return str(item.meta["trigger_id"])
        if self.gate is not None:
            return self.gate.take(item.captured_at)
        if "filename" in item.meta:
            return str(item.meta["filename"])
        return f"{item.source}-{item.index}"

    def _crop(self, frame: np.ndarray) -> np.ndarray:
        if self.roi is None:
            return frame
        x, y, w, h = self.roi
        if frame.ndim < 2 or x + w > frame.shape[1] or y + h > frame.shape[0]:
            raise DataError(
                f"frame {frame.shape[1] if frame.ndim > 1 else '?'}x{frame.shape[0]} is smaller than the ROI "
                f"x={x} y={y} w={w} h={h}; fix task.roi"
            )
        return frame[y : y + h, x : x + w]

    def _frame_box(self, amap: np.ndarray, roi: np.ndarray) -> Box:
        x, y, w, h = defect_box(amap, self.config.box_level, roi.shape[1], roi.shape[0])
        ox, oy = (self.roi[0], self.roi[1]) if self.roi else (0, 0)
        return x + ox, y + oy, w, h

    def _snapshot_jpeg(self, roi: np.ndarray, amap: np.ndarray, score: float) -> bytes:
        verdict = "PASS" if score < self.threshold else "FAIL"
        box = defect_box(amap, self.config.box_level, roi.shape[1], roi.shape[0]) if verdict == "FAIL" else None
        image = roi if roi.ndim == 3 else np.repeat(roi[..., None], 3, axis=2)
        caption = f"{verdict} {score:.3f} / {self.threshold:.3f}"
        drawn = overlay(image, amap, self.config.heatmap_alpha, box, caption)
        return bounded_jpeg(drawn, self.config.snapshot_max_bytes, self.config.snapshot_max_side)

    def _count(self, shift: str, passed: bool, rate: float) -> None:
        if self.metrics is None:
            return
        pipeline = self.context.pipeline
        self.metrics.defect_items.labels(pipeline=pipeline, shift=shift, verdict="pass" if passed else "fail").inc()
        self.metrics.defect_rate.labels(pipeline=pipeline, shift=shift).set(rate)
