"""LiteRT backend (ai-edge-litert, falling back to tflite-runtime) with XNNPACK and a thread budget."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_agent.errors import InferenceError, ModelError, RuntimeUnavailableError
from edge_agent.runtime.base import Runtime, TensorInfo, dequantize, quantize
from edge_agent.runtime.manifest import ModelFile, QuantParams

if TYPE_CHECKING:
    from edge_agent.config import LiteRTConfig

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'edge-agent[tflite]' (ai-edge-litert; on older devices pip install tflite-runtime)"


def import_interpreter() -> tuple[Any, str]:
    """The Interpreter class of LiteRT, or of tflite-runtime when LiteRT is not installed."""
    try:
        from ai_edge_litert import interpreter as litert

        return litert.Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter as tflite  # type: ignore[import-not-found,unused-ignore]

        return tflite.Interpreter, "tflite-runtime"
    except ImportError as exc:
        raise RuntimeUnavailableError(f"no TFLite runtime is installed: {INSTALL_HINT}") from exc


def _quant(detail: dict[str, Any]) -> QuantParams | None:
    scale, zero = detail.get("quantization", (0.0, 0))
    if np.dtype(detail["dtype"]).kind not in "iu" or not scale:
        return None
    return QuantParams(scale=float(scale), zero_point=int(zero))


class LiteRTRuntime(Runtime):
    """A .tflite file run by the LiteRT interpreter; int8 inputs/outputs are (de)quantized here."""

    def __init__(self, path: Path, entry: ModelFile, config: LiteRTConfig) -> None:
        interpreter_cls, package = import_interpreter()
        kwargs: dict[str, Any] = {"model_path": str(path), "num_threads": config.threads}
        if not config.xnnpack:
            kwargs["experimental_op_resolver_type"] = _builtin_without_default_delegates()
        try:
            self._interp = interpreter_cls(**kwargs)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: the TFLite runtime cannot load this file: {exc}") from exc
        self._lock = threading.Lock()
        self._in = self._interp.get_input_details()
        self._out = self._interp.get_output_details()
        self.inputs = [self._info(d) for d in self._in]
        self.outputs = [self._info(d) for d in self._out]
        self.description = f"{package} threads={config.threads} xnnpack={config.xnnpack}"

    @staticmethod
    def _info(detail: dict[str, Any]) -> TensorInfo:
        signature = detail.get("shape_signature", detail["shape"])
        shape = tuple(int(d) if int(d) > 0 else None for d in signature)
        return TensorInfo(detail["name"], shape, np.dtype(detail["dtype"]), _quant(detail))

    def _resize_if_needed(self, feeds: Sequence[np.ndarray]) -> None:
        changed = False
        for detail, feed in zip(self._in, feeds):
            if tuple(detail["shape"]) != feed.shape:
                self._interp.resize_tensor_input(detail["index"], list(feed.shape))
                changed = True
        if changed:
            self._interp.allocate_tensors()
            self._in = self._interp.get_input_details()
            self._out = self._interp.get_output_details()

    def run(self, feeds: Sequence[np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            try:
                self._resize_if_needed(feeds)
                for detail, info, feed in zip(self._in, self.inputs, feeds):
                    value = quantize(feed, info.quant, info.dtype) if info.quant else feed.astype(info.dtype)
                    self._interp.set_tensor(detail["index"], value)
                self._interp.invoke()
                results = []
                for detail, info in zip(self._out, self.outputs):
                    raw = self._interp.get_tensor(detail["index"])
                    results.append(dequantize(raw, info.quant) if info.quant else raw.copy())
            except (ValueError, RuntimeError) as exc:
                raise InferenceError(f"TFLite runtime failed: {exc}") from exc
        return results


def _builtin_without_default_delegates() -> Any:
    from ai_edge_litert import interpreter as litert

    return litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
