"""Fitting a sensor model from normal data alone: normalise, train, calibrate, export, write the manifest."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edge_agent.errors import DataError
from edge_agent.runtime.manifest import InputSpec, Manifest, ModelFile, TensorSpec, sha256_file, write_manifest
from edge_agent.tasks.sensor.scoring import DECODER, SensorParams, channel_errors, window_scores
from edge_agent.tasks.sensor.training import TrainSettings, Weights, train_autoencoder

logger = logging.getLogger(__name__)

PRECISION = {"onnx-fp32": ("onnx", "fp32"), "onnx-int8": ("onnx", "int8"), "tflite-int8": ("tflite", "int8")}


@dataclass(frozen=True)
class FitOptions:
    """Window geometry, autoencoder settings and threshold calibration (quantile of normal scores x margin)."""

    window: int = 20
    stride: int = 1
    train: TrainSettings = field(default_factory=TrainSettings)
    quantile: float = 0.995
    margin: float = 1.4
    name: str = "sensor-anomaly"
    version: str = "1.0.0"
    description: str = "Window autoencoder for machine-sensor anomaly scores"
    tflite: bool = True


@dataclass
class FitResult:
    """What a fit produced: the folder, its manifest, the fp32 weights and the normal-data scores."""

    directory: Path
    manifest: Manifest
    weights: Weights
    params: SensorParams
    normal_scores: np.ndarray
    files: dict[str, Path]


def normalisation(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of normal data; a (nearly) constant channel gets a small floor, not zero."""
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    floor = 1e-6 * np.maximum(1.0, np.abs(mean))
    return mean.astype(np.float32), np.maximum(std, floor).astype(np.float32)


def sliding(values: np.ndarray, size: int, stride: int = 1) -> np.ndarray:
    """Windows (N x size x C) ending at samples size-1, size-1+stride, ... (a view; copy to own it)."""
    if len(values) < size:
        raise DataError(f"{len(values)} samples are fewer than one window of {size}")
    view: np.ndarray = sliding_window_view(values, (size, values.shape[1]))[::stride, 0]
    return view


def normal_errors(weights: Weights, windows: np.ndarray, params: SensorParams) -> np.ndarray:
    """Per-channel relative errors of the fp32 network on normalised windows."""
    return channel_errors(windows, weights.reconstruct(windows), params)


def calibrate(
    weights: Weights, windows: np.ndarray, base: SensorParams, options: FitOptions
) -> tuple[SensorParams, float, np.ndarray]:
    """Error scale per channel (mean normal error), then threshold = quantile(normal scores) x margin."""
    raw = normal_errors(weights, windows, base)
    scale = np.maximum(raw.mean(axis=0), 1e-6).astype(np.float32)
    min_range = (windows.max(axis=1) - windows.min(axis=1)).min(axis=0).astype(np.float32)
    params = SensorParams(base.size, base.stride, base.channels, base.mean, base.std, scale, min_range)
    scores = window_scores(raw / scale)
    threshold = float(np.quantile(scores, options.quantile) * options.margin)
    return params, threshold, scores


def fit_arrays(
    values: np.ndarray, channels: list[str], directory: Path, options: FitOptions, source: str = "arrays"
) -> FitResult:
    """Fit, calibrate and export a model for `values` (normal samples x channels) into `directory`."""
    from edge_agent.tasks.sensor.export import export_all

    min_rows = options.window + 10
    if len(values) < min_rows:
        raise DataError(
            f"{source}: {len(values)} normal samples; at least {min_rows} are needed for window {options.window}"
        )
    mean, std = normalisation(values)
    normalised = ((values - mean) / std).astype(np.float32)
    windows = np.ascontiguousarray(sliding(normalised, options.window))
    base = SensorParams(options.window, options.stride, tuple(channels), mean, std, np.ones(len(channels), np.float32))
    logger.info("fitting %s autoencoder on %d windows of %s", options.train.architecture, len(windows), source)
    weights = train_autoencoder(windows, options.train)
    params, threshold, scores = calibrate(weights, windows, base, options)
    files = export_all(weights, directory, windows, tflite=options.tflite)
    manifest = build_manifest(options, params, threshold, files, directory, len(values), source)
    write_manifest(directory, manifest)
    return FitResult(directory, manifest, weights, params, scores, files)


def build_manifest(
    options: FitOptions,
    params: SensorParams,
    threshold: float,
    files: dict[str, Path],
    directory: Path,
    rows: int,
    source: str,
) -> Manifest:
    shape: list[int | None] = [None, params.size, len(params.channels)]
    entries = {
        key: ModelFile(path=path.name, sha256=sha256_file(path), format=PRECISION[key][0], precision=PRECISION[key][1])
        for key, path in files.items()
    }
    fit_info: dict[str, Any] = {
        "architecture": options.train.architecture,
        "latent": options.train.latent,
        "quantile": options.quantile,
        "margin": options.margin,
        "normal_rows": rows,
        "source": source,
    }
    return Manifest(
        name=options.name,
        version=options.version,
        task="sensor_anomaly",
        description=options.description,
        files=entries,
        default_variant="onnx-int8",
        inputs=[InputSpec(name="windows", shape=shape, dtype="float32", layout="NTC")],
        outputs=[TensorSpec(name="reconstruction", shape=shape, dtype="float32")],
        decoder=DECODER,
        thresholds={"score": float(f"{threshold:.6g}")},
        params={**params.to_manifest(), "fit": fit_info},
    )
