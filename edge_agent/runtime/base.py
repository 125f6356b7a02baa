"""The interface every inference backend implements: float tensors in, float tensors out."""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.errors import ModelError
from edge_agent.runtime.manifest import Manifest, ModelFile, QuantParams, shapes_compatible

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TensorInfo:
    """A tensor as the model file declares it."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype[np.generic]
    quant: QuantParams | None = None


class Runtime(abc.ABC):
    """A loaded model. `run` takes the manifest's logical inputs and returns its logical outputs.

    Quantized TFLite files take and return integers; backends quantize and dequantize at this
    boundary so that preprocessing and decoders see the same tensors whatever the file format.
    """

    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    description: str = ""

    @abc.abstractmethod
    def run(self, feeds: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run one inference; `feeds` follow the manifest's input order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release native resources."""

    def warmup(self, manifest: Manifest, runs: int = 2) -> None:
        """Run zeros through the model so the first real frame does not pay for lazy allocation."""
        feeds = [np.zeros([d or 1 for d in spec.shape], dtype=spec.dtype) for spec in manifest.inputs]
        for _ in range(runs):
            self.run(feeds)


def check_against_manifest(runtime: Runtime, manifest: Manifest, entry: ModelFile) -> None:
    """Refuse a model file whose tensors do not match what the manifest promises."""
    if len(runtime.inputs) != len(manifest.inputs) or len(runtime.outputs) != len(manifest.outputs):
        raise ModelError(
            f"{entry.path}: model has {len(runtime.inputs)} input(s) / {len(runtime.outputs)} output(s), "
            f"manifest declares {len(manifest.inputs)} / {len(manifest.outputs)}"
        )
    pairs = [("input", s.shape, t) for s, t in zip(manifest.inputs, runtime.inputs)]
    pairs += [("output", s.shape, t) for s, t in zip(manifest.outputs, runtime.outputs)]
    for role, expected, info in pairs:
        if not shapes_compatible(expected, info.shape):
            raise ModelError(
                f"{entry.path}: {role} {info.name!r} has shape {list(info.shape)}, manifest declares {expected}; "
                "the file and manifest.yaml belong to different models"
            )


def quantize(array: np.ndarray, quant: QuantParams, dtype: np.dtype[np.generic]) -> np.ndarray:
    info = np.iinfo(dtype)  # type: ignore[type-var]
    q = np.rint(array / quant.scale) + quant.zero_point
    out: np.ndarray = np.clip(q, info.min, info.max).astype(dtype)
    return out


def dequantize(array: np.ndarray, quant: QuantParams) -> np.ndarray:
    out: np.ndarray = (array.astype(np.float32) - np.float32(quant.zero_point)) * np.float32(quant.scale)
    return out
