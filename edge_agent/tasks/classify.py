"""Image classification: the simplest task plugin, used for smoke checks and as a template."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge_agent.config import ClassifyTaskConfig
from edge_agent.messages import ClassifyData
from edge_agent.runtime.registry import LoadedModel
from edge_agent.tasks.base import Item, Task, TaskContext, TaskOutput
from edge_agent.tasks.preprocess import ImagePreprocessor


class ClassifyTask(Task[ClassifyTaskConfig, np.ndarray]):
    """Softmax scores -> top-k labels."""

    kind = "classify"

    def __init__(self, config: ClassifyTaskConfig, model: LoadedModel, context: TaskContext) -> None:
        super().__init__(config, model, context)
        self._prep = ImagePreprocessor(model.manifest.inputs[0])
        self._labels = model.manifest.labels
        self.min_score = float(model.manifest.thresholds.get("score", 0.0))
        self._last_frame: np.ndarray | None = None

    def preprocess(self, items: Sequence[Item]) -> list[np.ndarray]:
        self._last_frame = items[0].data
        buffer, _ = self._prep(items[0].data)
        return [buffer]

    def decode(self, outputs: list[np.ndarray], items: Sequence[Item]) -> list[np.ndarray]:
        return [np.asarray(outputs[0]).reshape(len(items), -1)[i] for i in range(len(items))]

    def logic(self, decoded: np.ndarray, item: Item) -> TaskOutput:
        order = np.argsort(decoded)[::-1][: self.config.top_k]
        top = [(self._label(int(i)), float(decoded[i])) for i in order]
        label = top[0][0] if top[0][1] >= self.min_score else "unknown"
        return TaskOutput(ClassifyData(label=label, score=top[0][1], top=top))

    def set_threshold(self, name: str, value: float) -> None:
        if name != "score":
            super().set_threshold(name, value)
        self.min_score = value

    def snapshot(self) -> bytes | None:
        if self._last_frame is None:
            return None
        ok, jpeg = cv2.imencode(".jpg", self._last_frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
        return bytes(jpeg.tobytes()) if ok else None

    def _label(self, index: int) -> str:
        return self._labels[index] if index < len(self._labels) else str(index)

