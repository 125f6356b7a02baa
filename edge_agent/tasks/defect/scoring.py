"""The two kinds of defect model behind one seam: frame -> model input, model outputs -> (anomaly map, score).

- ``patch_knn`` (fit defect's default): the backbone file returns feature maps; the memory bank beside it
  turns them into a distance map (edge_agent.tasks.defect.patches). Parts are turned and letterboxed.
- ``anomaly_map_score`` (the autoencoder recipe and hand-made models): the file returns both itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import cv2
import numpy as np

from edge_agent.errors import ModelError
from edge_agent.runtime.registry import LoadedModel
from edge_agent.tasks.defect.geometry import PAD_VALUE, from_params
from edge_agent.tasks.defect.patches import DECODER, load_scorer, variant_params
from edge_agent.tasks.preprocess import ImagePreprocessor


class DefectScorer(Protocol):
    """What the defect task needs from a model, whatever its kind."""

    @property
    def threshold(self) -> float | None:
        """The fitted threshold of the loaded variant, None when the manifest has none."""

    def preprocess(self, roi_image: np.ndarray) -> np.ndarray: ...

    def decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, float]: ...

    def judge(self, roi_image: np.ndarray) -> tuple[np.ndarray, float]: ...


class MapScoreOutputs:
    """A model whose file outputs `anomaly_map` (1 x 1 x h x w, 0..1) and `score` itself."""

    def __init__(self, model: LoadedModel) -> None:
        manifest = model.manifest
        names = [o.name for o in manifest.outputs]
        if "anomaly_map" not in names or "score" not in names:
            raise ModelError(f"model {manifest.name!r}: a defect model needs outputs anomaly_map and score: {names}")
        self._map, self._score = names.index("anomaly_map"), names.index("score")
        self._pre = ImagePreprocessor(manifest.inputs[0])
        self._model = model
        self.threshold = manifest.thresholds.get("score")

    def preprocess(self, roi_image: np.ndarray) -> np.ndarray:
        buffer, _ = self._pre(roi_image)
        return buffer

    def decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, float]:
        amap = np.asarray(outputs[self._map], dtype=np.float32)
        return amap.reshape(amap.shape[-2:]).copy(), float(np.asarray(outputs[self._score]).ravel()[0])

    def judge(self, roi_image: np.ndarray) -> tuple[np.ndarray, float]:
        return self.decode(self._model.runtime.run([self.preprocess(roi_image)]))


class PatchKnn:
    """A backbone file plus the memory bank the fit wrote for that variant."""

    def __init__(self, model: LoadedModel) -> None:
        manifest = model.manifest
        spec = manifest.inputs[0]
        h, w, c = spec.shape[1], spec.shape[2], spec.shape[3]
        if spec.layout != "NHWC" or h is None or w is None or c is None:
            raise ModelError(f"model {manifest.name!r}: a {DECODER} model needs a fixed NHWC image input")
        self._geometry = from_params(manifest.params, (w, h), c)
        self._pre = ImagePreprocessor(spec, letterbox=True, pad_value=PAD_VALUE)
        self._scorer = load_scorer(model.directory, manifest, model.variant)
        self._model = model
        self.threshold = float(variant_params(manifest, model.variant)["threshold"])
        self._content = (0, 0, w, h, False)  # where the last part lies in the input: x, y, width, height, turned

    def preprocess(self, roi_image: np.ndarray) -> np.ndarray:
        turned = self._geometry.orient(roi_image)
        shrunk = self._geometry.shrink(turned)
        buffer, box = self._pre(shrunk)
        nw, nh = round(shrunk.shape[1] * box.scale_x), round(shrunk.shape[0] * box.scale_y)
        self._content = (int(box.pad_x), int(box.pad_y), max(1, nw), max(1, nh), turned is not roi_image)
        return buffer

    def decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, float]:
        amap, score = self._scorer(outputs)
        return self._on_part(amap), score

    def _on_part(self, amap: np.ndarray) -> np.ndarray:
        """The map over the part as it came in: letterbox padding cut off, the quarter turn undone."""
        x, y, nw, nh, turned = self._content
        w, h = self._geometry.size
        full = cv2.resize(amap, (w, h), interpolation=cv2.INTER_LINEAR)[y : y + nh, x : x + nw]
        return np.ascontiguousarray(np.rot90(full, k=1) if turned else full)

    def judge(self, roi_image: np.ndarray) -> tuple[np.ndarray, float]:
        return self.decode(self._model.runtime.run([self.preprocess(roi_image)]))


SCORERS: dict[str, Callable[[LoadedModel], DefectScorer]] = {"anomaly_map_score": MapScoreOutputs, DECODER: PatchKnn}


def scorer_for(model: LoadedModel) -> DefectScorer:
    kind = SCORERS.get(model.manifest.decoder)
    if kind is None:
        raise ModelError(
            f"model {model.manifest.name!r}: decoder {model.manifest.decoder!r} is not a defect decoder "
            f"({', '.join(SCORERS)})"
        )
    return kind(model)
