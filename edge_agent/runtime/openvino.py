"""OpenVINO backend for Intel CPUs, iGPUs and NPUs: the same ONNX files (fp32 and QDQ int8) compiled by OpenVINO."""

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
    from edge_agent.config import OpenVINOConfig

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'edge-agent[openvino]'"


def _import_openvino() -> Any:
    try:
        import openvino  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise RuntimeUnavailableError(f"the openvino runtime is not installed: {INSTALL_HINT}") from exc
    return openvino


def compile_options(config: OpenVINOConfig) -> dict[str, str]:
    """One stream, latency hint, an explicit thread budget (three pipelines share the device's cores)."""
    options = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}
    if config.precision != "auto":
        # OpenVINO's CPU default is bf16 where the CPU has it (AVX512-BF16, AMX): outputs move by ~3 %.
        options["INFERENCE_PRECISION_HINT"] = config.precision
    if config.device == "CPU":
        options["INFERENCE_NUM_THREADS"] = str(config.threads)
    if config.cache_dir:
        # GPU and NPU compile for tens of seconds: the compiled blob cache makes later starts fast.
        options["CACHE_DIR"] = config.cache_dir
    return options


class OpenVINORuntime(Runtime):
    """An ONNX file read and compiled by OpenVINO for one device (CPU, GPU, NPU or AUTO)."""

    def __init__(self, path: Path, entry: ModelFile, config: OpenVINOConfig) -> None:
        ov = _import_openvino()
        core = ov.Core()
        if config.device != "AUTO" and config.device not in core.available_devices:
            raise RuntimeUnavailableError(
                f"model.runtime.device {config.device} is not available to OpenVINO here "
                f"(found {', '.join(core.available_devices)}): pick one of them or AUTO"
            )
        try:
            compiled = core.compile_model(str(path), config.device, compile_options(config))
        except RuntimeError as exc:  # OpenVINO reports unreadable files and unsupported ops as RuntimeError
            raise ModelError(f"{path}: OpenVINO cannot compile this file: {exc}") from exc
        self._request = compiled.create_infer_request()
        self._compiled = compiled
        self.inputs = [self._info(port) for port in compiled.inputs]
        self.outputs = [self._info(port) for port in compiled.outputs]
        self._dtypes = [info.dtype for info in self.inputs]
        version = ov.get_version().split("-")[0]
        precision = config.precision
        if config.device == "CPU":  # what OpenVINO really runs: auto becomes bf16 on CPUs that have it
            precision = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        self.description = f"openvino {version} [{config.device} {precision}] threads={config.threads}"

    @staticmethod
    def _info(port: Any) -> TensorInfo:
        shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
        return TensorInfo(port.get_any_name(), shape, np.dtype(port.get_element_type().to_dtype()))

    def run(self, feeds: Sequence[np.ndarray]) -> list[np.ndarray]:
        inputs = {i: f if f.dtype == d else f.astype(d) for i, (f, d) in enumerate(zip(feeds, self._dtypes))}
        try:
            result = self._request.infer(inputs)
        except RuntimeError as exc:
            raise InferenceError(f"openvino failed: {exc}") from exc
        # infer() returns views into the request's buffers, which the next inference overwrites.
        return [np.array(result[port], copy=True) for port in self._compiled.outputs]

    def close(self) -> None:
        del self._request
        del self._compiled
