"""Model manifests: what a model file is, what it expects and how to check it before it runs.

Each model lives in ``models/<name>/`` with ``manifest.yaml`` beside its files. Tensor layout,
dtype, colour order and normalisation come from here, never from guesses about the data.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge_agent.errors import ManifestError, ModelError

MANIFEST_NAME = "manifest.yaml"
Dtype = Literal["float32", "float16", "uint8", "int8", "int32", "int64", "bool"]
Dim = Annotated[int, Field(ge=1)] | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuantParams(_Strict):
    """Affine quantization of a tensor: real = scale * (q - zero_point)."""

    scale: float = Field(gt=0, description="Quantization scale.")
    zero_point: int = Field(description="Quantization zero point.")


class TensorSpec(_Strict):
    """A model output as the decoder sees it (after dequantization)."""

    name: str = Field(description="Tensor name in the model file (informational for TFLite).")
    shape: list[Dim] = Field(description="Shape; null marks a dynamic dimension such as the batch.")
    dtype: Dtype = Field("float32", description="Element type handed to the decoder.")


class InputSpec(TensorSpec):
    """A model input and the preprocessing that produces it."""

    layout: Literal["NCHW", "NHWC", "NC", "NTC", "NCT"] = Field(
        description="Axis order: images NCHW/NHWC, feature vectors NC, windows NTC (time, channel) or NCT."
    )
    color: Literal["RGB", "BGR", "GRAY"] | None = Field(None, description="Channel order for images.")
    scale: float = Field(1.0, description="Pixels are multiplied by this first (1/255 maps 0..255 to 0..1).")
    mean: list[float] = Field(default_factory=list, description="Per-channel mean subtracted after scaling.")
    std: list[float] = Field(default_factory=list, description="Per-channel std divided after the mean.")

    @model_validator(mode="after")
    def _mean_std_match(self) -> InputSpec:
        if self.mean and self.std and len(self.mean) != len(self.std):
            raise ValueError("mean and std must have the same length")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be > 0")
        return self


class ModelFile(_Strict):
    """One file of the model: a format and precision of the same network."""

    path: str = Field(description="File name relative to the model folder.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the file, checked on load.")
    format: Literal["onnx", "tflite"] = Field(description="File format; picks the runtime.")
    precision: Literal["fp32", "fp16", "int8"] = Field(description="Numeric precision of the weights.")
    input_quantization: list[QuantParams | None] | None = Field(
        None, description="Set when the file takes quantized inputs; the runtime quantizes float inputs."
    )
    output_quantization: list[QuantParams | None] | None = Field(
        None, description="Set when the file returns quantized outputs; the runtime dequantizes them."
    )


class SelfTest(_Strict):
    """Sample inputs and the outputs they must give: a model update runs them before it swaps."""

    file: str = Field(description="An .npz beside the manifest with input_0.. and output_0.. arrays.")
    atol: float = Field(1e-3, ge=0, description="Absolute tolerance per output element.")
    rtol: float = Field(1e-2, ge=0, description="Relative tolerance per output element.")


class Manifest(_Strict):
    """manifest.yaml of one model folder."""

    schema_version: Literal[1] = Field(1, description="Manifest schema version.")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="Model name (the folder name).")
    version: str = Field(description="Model version, shown in the retained model topic.")
    task: str = Field(description="Task the model serves: sensor_anomaly, defect, shelf, classify.")
    description: str = Field("", description="One line for operators.")
    files: dict[str, ModelFile] = Field(min_length=1, description="Variants by name, e.g. onnx-int8.")
    default_variant: str = Field(description="Variant used when the config names none.")
    inputs: list[InputSpec] = Field(min_length=1, description="Model inputs in order.")
    outputs: list[TensorSpec] = Field(min_length=1, description="Model outputs in order.")
    decoder: str = Field(description="Name of the decoder that turns outputs into results.")
    labels: list[str] = Field(default_factory=list, description="Class labels, index order.")
    thresholds: dict[str, float] = Field(default_factory=dict, description="Named decision thresholds.")
    params: dict[str, Any] = Field(default_factory=dict, description="Task parameters (normalisation, window).")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Measured accuracy, see MODEL_CARD.md.")
    self_test: SelfTest | None = Field(None, description="Samples an over-the-air update must reproduce.")

    @model_validator(mode="after")
    def _default_variant_exists(self) -> Manifest:
        if self.default_variant not in self.files:
            raise ValueError(f"default_variant {self.default_variant!r} is not one of files: {sorted(self.files)}")
        return self

    def variant(self, name: str | None) -> tuple[str, ModelFile]:
        key = name or self.default_variant
        if key not in self.files:
            raise ModelError(f"model {self.name!r} has no variant {key!r}; available: {', '.join(sorted(self.files))}")
        return key, self.files[key]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(model_dir: Path) -> Manifest:
    """Read and validate ``model_dir/manifest.yaml``; raise ManifestError naming the file and field."""
    path = model_dir / MANIFEST_NAME
    if not path.is_file():
        raise ModelError(f"{path}: no manifest found (a model folder needs {MANIFEST_NAME} beside its files)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ManifestError(f"{path}: {where}: {first['msg']} ({exc.error_count()} problem(s))") from exc


def verify_file(model_dir: Path, manifest: Manifest, variant: str | None) -> tuple[str, ModelFile, Path]:
    """Return the chosen variant and its path once the file exists and its SHA-256 matches the manifest."""
    key, entry = manifest.variant(variant)
    path = model_dir / entry.path
    if not path.is_file():
        raise ModelError(f"{path}: model file listed in {model_dir / MANIFEST_NAME} is missing")
    actual = _cached_sha256(path)
    if actual != entry.sha256:
        raise ModelError(
            f"{path}: sha256 {actual[:12]}... does not match the manifest ({entry.sha256[:12]}...); "
            "the file is corrupt or was replaced: restore the model folder from its release or rebuild it"
        )
    return key, entry, path


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def _cached_sha256(path: Path) -> str:
    stat = os.stat(path)
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = sha256_file(path)
    return _HASH_CACHE[key]


def write_manifest(model_dir: Path, manifest: Manifest) -> Path:
    """Write manifest.yaml (keys in schema order) and return its path."""
    path = model_dir / MANIFEST_NAME
    data = manifest.model_dump(mode="json", exclude_defaults=False)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def shapes_compatible(expected: list[int | None], actual: tuple[int | None, ...] | list[int | None]) -> bool:
    """A manifest dimension of None matches anything, and a model's free dimension takes any size the manifest
    declares (a detector exported for any input size, whose manifest says what frames are fitted into)."""
    if len(expected) != len(actual):
        return False
    return all(want is None or got is None or want == got for want, got in zip(expected, actual))
