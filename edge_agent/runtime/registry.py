"""Explicit, lazily imported table of inference backends: a Raspberry Pi never imports TensorRT code."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from edge_agent.runtime.base import Runtime, check_against_manifest
from edge_agent.runtime.manifest import Manifest, ModelFile, load_manifest, verify_file

if TYPE_CHECKING:
    from edge_agent.config import RuntimeConfig

logger = logging.getLogger(__name__)


class _Factory(Protocol):
    def __call__(self, path: Path, entry: ModelFile, config: RuntimeConfig) -> Runtime: ...


# runtime kind -> (module, factory, file format it reads)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "onnxruntime": ("edge_agent.runtime.onnx", "OnnxRuntime", "onnx"),
    "litert": ("edge_agent.runtime.litert", "LiteRTRuntime", "tflite"),
    "openvino": ("edge_agent.runtime.openvino", "OpenVINORuntime", "onnx"),
}
# Planned, not shipped (docs/runtimes.md): "hailo" (Hailo-8L on the Raspberry Pi 5 AI Kit, .hef files) and
# "edgetpu" (Coral, *_edgetpu.tflite). Each would be one module implementing runtime.base.Runtime.


@dataclass
class LoadedModel:
    """A verified model ready to run."""

    directory: Path
    manifest: Manifest
    variant: str
    entry: ModelFile
    path: Path
    runtime: Runtime


def backend_for(kind: str) -> _Factory:
    module_name, attr, _fmt = BACKENDS[kind]
    module = importlib.import_module(module_name)
    factory: _Factory = getattr(module, attr)
    return factory


def pick_variant(manifest: Manifest, variant: str | None, runtime_kind: str) -> str:
    """The named variant, or the default one if it suits the runtime, or the first int8 file that does."""
    fmt = BACKENDS[runtime_kind][2]
    if variant:
        return variant
    if manifest.files[manifest.default_variant].format == fmt:
        return manifest.default_variant
    candidates = sorted(
        (name for name, f in manifest.files.items() if f.format == fmt),
        key=lambda name: manifest.files[name].precision != "int8",
    )
    return candidates[0] if candidates else manifest.default_variant


def load_model(directory: Path, variant: str | None, config: RuntimeConfig, warmup: bool = True) -> LoadedModel:
    """Verify the manifest, the file hash and the tensor shapes, then load and warm up the model."""
    from edge_agent.errors import ModelError

    manifest = load_manifest(directory)
    chosen = pick_variant(manifest, variant, config.kind)
    key, entry, path = verify_file(directory, manifest, chosen)
    expected = BACKENDS[config.kind][2]
    if entry.format != expected:
        raise ModelError(
            f"{path}: variant {key!r} is a {entry.format} file but the runtime {config.kind!r} reads {expected}; "
            "pick a matching variant or runtime"
        )
    runtime = backend_for(config.kind)(path, entry, config)
    check_against_manifest(runtime, manifest, entry)
    if warmup:
        runtime.warmup(manifest)
    logger.info("loaded model %s %s (%s) with %s", manifest.name, manifest.version, key, runtime.description)
    return LoadedModel(directory, manifest, key, entry, path, runtime)
