"""ONNX Runtime backend: execution providers picked from what is installed, threads budgeted explicitly."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_agent.errors import InferenceError, ModelError, RuntimeUnavailableError
from edge_agent.runtime.base import Runtime, TensorInfo
from edge_agent.runtime.manifest import ModelFile

if TYPE_CHECKING:
    from edge_agent.config import OnnxRuntimeConfig

logger = logging.getLogger(__name__)

# Preference order when providers is "auto"; the CPU provider is always available as the last resort.
PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
        raise RuntimeUnavailableError(
            "onnxruntime is not installed: pip install onnxruntime (onnxruntime-gpu or NVIDIA's Jetson wheel on GPUs)"
        ) from exc
    return onnxruntime


def require_accelerator(config: OnnxRuntimeConfig, available: Sequence[str]) -> None:
    """Refuse to run silently on the CPU when the config names accelerators and none is installed."""
    asked = [PROVIDER_NAMES[k] for k in config.providers if k not in ("auto", "cpu")]
    if not asked or config.fallback == "cpu" or any(name in available for name in asked):
        return
    raise RuntimeUnavailableError(
        f"model.runtime.providers asks for {', '.join(asked)} but this onnxruntime has only {', '.join(available)}: "
        "run the image with the NVIDIA runtime (--runtime nvidia) and the GPU build, "
        "or set model.runtime.fallback: cpu to accept the CPU"
    )


def available_providers() -> list[str]:
    found: list[str] = _import_ort().get_available_providers()
    return found


def choose_providers(wanted: Sequence[str], available: Sequence[str], config: OnnxRuntimeConfig) -> list[Any]:
    """Map configured provider keys to ONNX Runtime providers that are actually installed."""
    require_accelerator(config, available)
    keys = list(PROVIDER_NAMES) if list(wanted) == ["auto"] else list(wanted)
    chosen: list[Any] = []
    for key in keys:
        name = PROVIDER_NAMES[key]
        if name not in available:
            if list(wanted) != ["auto"]:
                logger.warning("execution provider %s is not installed; skipping it", name)
            continue
        if key == "tensorrt" and config.tensorrt_cache_dir:
            options = {
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": config.tensorrt_cache_dir,
                "trt_fp16_enable": config.tensorrt_fp16,
            }
            chosen.append((name, options))
        elif key == "openvino":
            # Without it the OpenVINO provider takes every core, against the daemon's thread budget.
            chosen.append((name, {"num_of_threads": str(config.intra_op_threads)}))
        else:
            chosen.append(name)
    if "CPUExecutionProvider" not in [c if isinstance(c, str) else c[0] for c in chosen]:
        chosen.append("CPUExecutionProvider")
    return chosen


class OnnxRuntime(Runtime):
    """A model file run by onnxruntime.InferenceSession."""

    def __init__(self, path: Path, entry: ModelFile, config: OnnxRuntimeConfig) -> None:
        ort = _import_ort()
        options = ort.SessionOptions()
        options.intra_op_num_threads = config.intra_op_threads
        options.inter_op_num_threads = config.inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning threads steal the core from the other pipelines in the daemon (FIELD_NOTES: 2x latency).
        spin = "1" if config.allow_spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        providers = choose_providers(config.providers, ort.get_available_providers(), config)
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for corrupt files
            raise ModelError(f"{path}: onnxruntime cannot load this file: {exc}") from exc
        self.inputs = [self._info(arg) for arg in self._session.get_inputs()]
        self.outputs = [self._info(arg) for arg in self._session.get_outputs()]
        self._input_names = [info.name for info in self.inputs]
        self._input_dtypes = [info.dtype for info in self.inputs]
        used = self._session.get_providers()
        self.description = f"onnxruntime {ort.__version__} [{', '.join(used)}] threads={config.intra_op_threads}"

    @staticmethod
    def _info(arg: Any) -> TensorInfo:
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in arg.shape)
        return TensorInfo(arg.name, shape, np.dtype(_ORT_DTYPES.get(arg.type, np.float32)))

    def run(self, feeds: Sequence[np.ndarray]) -> list[np.ndarray]:
        named = {
            name: feed if feed.dtype == dtype else feed.astype(dtype)
            for name, feed, dtype in zip(self._input_names, feeds, self._input_dtypes)
        }
        try:
            outputs: list[np.ndarray] = self._session.run(None, named)
        except Exception as exc:
            raise InferenceError(f"onnxruntime failed: {exc}") from exc
        return outputs

    def close(self) -> None:
        del self._session
