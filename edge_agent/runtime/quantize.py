"""Static int8 quantization of an fp32 ONNX model (QDQ, per-channel weights) from calibration data.

Activations are uint8 and weights int8 with 7-bit range (U8S8, reduce_range) by default. Measured with
onnxruntime 1.32 on this project's x86 machines (AVX-512 VNNI), 1 thread: with int8 activations (S8S8) the
CPU provider left a third to a half of the convolutions and every residual Add in float between
Dequantize/Quantize pairs, so int8 was no faster than fp32 (MobileNetV2-224: S8S8 3.65 ms, U8S8 2.31 ms,
fp32 4.18 ms; the shelf detector 2.50 / 1.03 / 1.56 ms; the defect model 0.76 / 0.43 / 0.73 ms); with
uint8 activations every convolution ran as QLinearConv. 7-bit weights keep the u8 x s8 products of x86
CPUs without VNNI (AVX2) from saturating.

Needs the `onnx` package (extra `quantize`); the daemon never imports this module.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import ModelError, RuntimeUnavailableError
from edge_agent.runtime import quant_ranges
from edge_agent.runtime.manifest import Manifest, ModelFile, load_manifest, sha256_file, write_manifest
from edge_agent.runtime.quant_ranges import SILU_FLOOR

logger = logging.getLogger(__name__)


class _Reader:
    """Feeds calibration batches to onnxruntime's calibrator."""

    def __init__(self, input_name: str, samples: Sequence[np.ndarray]) -> None:
        self._name = input_name
        self._iter: Iterator[np.ndarray] = iter(samples)

    def get_next(self) -> dict[str, np.ndarray] | None:
        sample = next(self._iter, None)
        return None if sample is None else {self._name: sample.astype(np.float32)}

    def rewind(self) -> None:  # pragma: no cover - not used by the MinMax calibrator
        raise NotImplementedError


def quantize_onnx(
    fp32_path: Path,
    int8_path: Path,
    calibration: Sequence[np.ndarray],
    input_name: str,
    per_channel: bool = True,
    exclude_nodes: Sequence[str] = (),
    method: str = "minmax",
    activations: str = "uint8",
    preprocess: bool = True,
    moving_average: bool = False,
    value_range: tuple[float, float] | None = None,
    silu_floor: float | None = SILU_FLOOR,
) -> None:
    """Write a static QDQ int8 copy of `fp32_path` calibrated on `calibration` (one array per batch).

    `activations` "uint8" (U8S8, the default, see the module notes) or "int8" (S8S8); `preprocess` False when
    the caller has already run onnxruntime's quantization pre-processing (e.g. to pick nodes to exclude);
    `moving_average` (minmax only) takes each activation's range as the mean of the per-batch ranges instead of
    the extremes over all batches, so one outlier frame does not cost every other frame its precision.
    `value_range` is the range the input can take (`quant_ranges.input_range` of the manifest's input: 0..255
    for raw pixels), set on the input instead of the calibration frames' range; `silu_floor` clips SiLU inputs'
    ranges below (None: off). See edge_agent.runtime.quant_ranges for why both matter.
    """
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        raise RuntimeUnavailableError("quantization needs onnx: pip install 'edge-agent[quantize]'") from exc
    if not calibration:
        raise ModelError("quantization needs calibration data: pass representative inputs (a few hundred)")
    if activations not in ("uint8", "int8"):
        raise ModelError(f"activations {activations!r}: use uint8 (U8S8) or int8 (S8S8)")
    source, prepared = fp32_path, int8_path.with_suffix(".prep.onnx")
    if preprocess:
        try:
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
            source = prepared
        except Exception as exc:  # noqa: BLE001 - pre-processing is an optimisation; fall back to the raw graph
            logger.info("quantization pre-processing skipped: %s", exc)
    methods: dict[str, Any] = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    options: dict[str, Any] = {
        "ActivationSymmetric": False,
        "WeightSymmetric": True,
        "CalibMovingAverage": moving_average,
    }
    try:
        fixed = _range_overrides(source, calibration, input_name, methods[method], options, value_range, silu_floor)
        if fixed:
            options["TensorQuantOverrides"] = fixed
        quantize_static(
            str(source),
            str(int8_path),
            _Reader(input_name, calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            reduce_range=True,
            nodes_to_exclude=list(exclude_nodes),
            calibrate_method=methods[method],
            extra_options=options,
        )
    finally:
        if source == prepared:
            prepared.unlink(missing_ok=True)


def _range_overrides(
    model: Path,
    calibration: Sequence[np.ndarray],
    input_name: str,
    method: Any,
    options: dict[str, Any],
    value_range: tuple[float, float] | None,
    silu_floor: float | None,
) -> dict[str, Any]:
    """TensorQuantOverrides of quant_ranges' rules; a first calibration pass only when the graph has SiLU."""
    import onnx
    from onnxruntime.quantization.calibrate import create_calibrator

    graph = onnx.load(str(model)).graph
    silu = quant_ranges.silu_inputs(graph) if silu_floor is not None else []
    calibrated: dict[str, tuple[float, float]] = {}
    if silu:
        with tempfile.TemporaryDirectory() as scratch:
            calibrator = create_calibrator(model, None, Path(scratch) / "augmented.onnx", method,
                                           extra_options={"moving_average": options["CalibMovingAverage"]})  # fmt: skip
            calibrator.collect_data(_Reader(input_name, calibration))
            calibrated = quant_ranges.calibrated_ranges(calibrator.compute_data(), silu)
    found = quant_ranges.overrides(graph, calibrated, input_name, value_range, silu_floor)
    logger.info("quantization ranges set from the graph on %d tensor(s)", len(found))
    return found


def record_int8_variant(model_dir: Path, fp32_variant: str, int8_file: str, variant: str = "onnx-int8") -> Manifest:
    """Add (or refresh) the int8 file in manifest.yaml beside the fp32 one, with its hash."""
    manifest = load_manifest(model_dir)
    base = manifest.files[fp32_variant]
    entry = ModelFile(
        path=int8_file,
        sha256=sha256_file(model_dir / int8_file),
        format="onnx",
        precision="int8",
    )
    files = dict(manifest.files)
    files[variant] = entry
    updated = manifest.model_copy(update={"files": files})
    write_manifest(model_dir, updated)
    logger.info("recorded %s (%s) beside %s", variant, int8_file, base.path)
    return updated


def load_calibration(path: Path) -> list[np.ndarray]:
    """Calibration inputs from a .npy file: an array whose first axis indexes batches."""
    try:
        data = np.load(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read calibration data (expected a .npy array): {exc}") from exc
    return [data[i] for i in range(data.shape[0])]
