"""Fitting a sensor model from normal data alone: normalise, train, calibrate, export, write the manifest."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edge_agent.errors import DataError
from edge_agent.runtime.manifest import InputSpec, Manifest, ModelFile, TensorSpec, sha256_file, write_manifest
from edge_agent.tasks.sensor import spacing
from edge_agent.tasks.sensor.calibration import MIN_COMPLETE, Calibration
from edge_agent.tasks.sensor.crossfit import calibrate_likelihood
from edge_agent.tasks.sensor.durations import parse_duration
from edge_agent.tasks.sensor.recent import HOLD, REFERENCE_WINDOWS, RecentSpec, fitted_spec, series_deviation
from edge_agent.tasks.sensor.scoring import DECODER, ERROR_FLOOR, SensorParams, channel_errors, window_scores
from edge_agent.tasks.sensor.spectral import SpectralSpec, series_saliency
from edge_agent.tasks.sensor.training import TrainSettings, Weights, train_autoencoder

logger = logging.getLogger(__name__)

PRECISION = {"onnx-fp32": ("onnx", "fp32"), "onnx-int8": ("onnx", "int8"), "tflite-int8": ("tflite", "int8")}
CONSTANT = 1e-9  # a channel whose std is below 1e-9 x its level (or 1e-9) does not move in the normal data
LIKELIHOOD_THRESHOLD = 0.999
FAST_LIKELIHOOD = 0.999999  # one-channel models: a window this far out starts an anomaly after two windows
ONE_CHANNEL_ADAPT_S = 259_200.0  # one-channel models adapt their levels with a 3-day time constant (NAB-like streams)


@dataclass(frozen=True)
class Debounce:
    """Decision settings recorded in the manifest: seconds over threshold before a start, calm before an end."""

    min_duration_s: float | None = None
    clear_duration_s: float | None = None

    def to_manifest(self) -> dict[str, float]:
        values = {"min_duration_s": self.min_duration_s, "clear_duration_s": self.clear_duration_s}
        return {k: round(v, 3) for k, v in values.items() if v is not None}


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
    tflite: bool = False
    debounce: Debounce = field(default_factory=Debounce)
    likelihood_threshold: float = LIKELIHOOD_THRESHOLD
    window_text: str | None = None
    level_test: str = "auto"  # on, off, or auto: on for one channel, where the window model cannot see levels
    recent_test: str = "auto"  # the recent-change detector: on, off, or auto (on for one channel)
    reference: int | None = None  # its reference in samples; None = REFERENCE_WINDOWS windows
    adapt: str = "auto"  # the run-time adaptation recorded: a duration (1d), off, or auto (1 day for one channel)
    spectral_test: str = "off"  # the spectral-residual test: on, off, or auto (on for one channel)

    def levels_for(self, channels: int) -> bool:
        return self.level_test == "on" or (self.level_test == "auto" and channels == 1)

    def recent_for(self, channels: int) -> bool:
        return self.recent_test == "on" or (self.recent_test == "auto" and channels == 1)

    def spectral_for(self, channels: int) -> bool:
        return self.spectral_test == "on" or (self.spectral_test == "auto" and channels == 1)

    def adapt_for(self, channels: int) -> float | None:
        """The adaptation time constant in seconds recorded for the device, or None for none."""
        if self.adapt == "auto":
            return ONE_CHANNEL_ADAPT_S if channels == 1 else None
        return None if self.adapt == "off" else parse_duration(self.adapt)


@dataclass
class FitResult:
    """What a fit produced: the folder, its manifest, the fp32 weights, normal-data scores and warnings."""

    directory: Path
    manifest: Manifest
    weights: Weights
    params: SensorParams
    normal_scores: np.ndarray
    files: dict[str, Path]
    warnings: list[str] = field(default_factory=list)
    normal_likelihood: np.ndarray | None = None


def constant_channels(values: np.ndarray) -> np.ndarray:
    """Mask of channels that never move in the normal data."""
    std = values.std(axis=0)
    return np.asarray(std <= CONSTANT * np.maximum(1.0, np.abs(values.mean(axis=0))))


def normalisation(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of normal data; a constant channel gets 0.1% of its level (or 1e-6) as its std."""
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    floor = np.where(constant_channels(values), np.maximum(1e-3 * np.abs(mean), 1e-6), 1e-6 * np.maximum(1, abs(mean)))
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
    """Error scale per channel (mean normal error, floored), then threshold = quantile(normal scores) x margin.

    The floor keeps a channel the network reconstructs exactly (a constant one) from dividing by ~0;
    the threshold is never below margin x 1.0 (1.0 = a typical normal window), so it is never 0.
    """
    raw = normal_errors(weights, windows, base)
    scale = np.maximum(raw.mean(axis=0), ERROR_FLOOR).astype(np.float32)
    min_range = (windows.max(axis=1) - windows.min(axis=1)).min(axis=0).astype(np.float32)
    params = replace(base, error_scale=scale, min_range=min_range)
    scores = window_scores(raw / scale)
    threshold = max(float(np.quantile(scores, options.quantile)), 1.0) * options.margin
    return params, threshold, scores


def rank_for(options: FitOptions, channels: int, warnings: list[str]) -> FitOptions:
    """Clamp the bottleneck below window x channels: a full-rank autoencoder copies its input and flags everything."""
    features = options.window * channels
    limit = max(1, features // 2)
    if options.train.latent <= limit:
        return options
    warnings.append(
        f"latent {options.train.latent} is not well below window x channels = {options.window} x {channels} = "
        f"{features} (the model would copy its input and flag every window); using latent {limit}"
    )
    return replace(options, train=replace(options.train, latent=limit))


def _check_rows(values: np.ndarray, options: FitOptions, source: str) -> None:
    min_rows = options.window + 10
    if len(values) < min_rows:
        raise DataError(
            f"{source}: {len(values)} normal samples; at least {min_rows} are needed for window {options.window}"
        )


def _constant_warnings(values: np.ndarray, channels: list[str]) -> list[str]:
    flat = constant_channels(values)
    return [
        f"channel {name} is constant ({values[0, i]:.6g}) in the normal data: any change from that value will "
        "score as abnormal; give normal data where it moves, or leave it out with --channels"
        for i, name in enumerate(channels)
        if flat[i]
    ]


def training_windows(
    normalised: np.ndarray, timestamps: np.ndarray | None, size: int, period: float
) -> tuple[np.ndarray, np.ndarray]:
    """Every stride-1 window of the normal data that spans no gap in the timestamps, and the mask that chose them."""
    windows = sliding(normalised, size)
    if timestamps is None:
        return np.ascontiguousarray(windows), np.ones(len(windows), dtype=bool)
    mask = spacing.gap_free(timestamps, size, period)
    if not mask.any():
        raise DataError(f"every window of {size} samples spans a gap in the timestamps; give a shorter window")
    return np.ascontiguousarray(windows[mask]), mask


def reference_for(options: FitOptions, rows: int, test: str, warnings: list[str]) -> int | None:
    """A span test's reference in samples, shortened so that at least half the normal windows have one."""
    wanted = options.reference or REFERENCE_WINDOWS * options.window
    fits = (rows - options.window + 1) // 2 - (HOLD - 1) * options.window
    if fits < max(2, MIN_COMPLETE):
        warnings.append(f"{rows} normal samples are too few for the {test} test (reference {wanted}): left out")
        return None
    if wanted > fits:
        warnings.append(f"{test} reference shortened from {wanted} to {fits} samples (half the normal windows)")
    return min(wanted, fits)


def recent_spec(options: FitOptions, normalised: np.ndarray, warnings: list[str]) -> RecentSpec | None:
    """The recent-change detector's spec, its reference shortened to what the normal data allow."""
    reference = reference_for(options, len(normalised), "recent-change", warnings)
    return None if reference is None else fitted_spec(normalised, reference)


def spectral_test(
    normalised: np.ndarray, timestamps: np.ndarray | None, options: FitOptions, period: float, warnings: list[str]
) -> tuple[SpectralSpec | None, np.ndarray | None]:
    """The spectral-residual test's spec and every stride-1 window's ratio, where the fit has the test."""
    if not options.spectral_for(normalised.shape[1]):
        return None, None
    reference = reference_for(options, len(normalised), "spectral-residual", warnings)
    if reference is None:
        return None, None
    spec = SpectralSpec(reference)
    valid = spacing.gap_free(timestamps, spec.span(options.window), period) if timestamps is not None else None
    return spec, series_saliency(normalised.astype(np.float64), options.window, spec, valid)


def recent_test(
    normalised: np.ndarray, timestamps: np.ndarray | None, options: FitOptions, period: float, warnings: list[str]
) -> tuple[RecentSpec | None, np.ndarray | None]:
    """The recent-change test's spec and every stride-1 window's deviation, where the fit has the test."""
    spec = recent_spec(options, normalised, warnings) if options.recent_for(normalised.shape[1]) else None
    if spec is None:
        return None, None
    return spec, recent_deviations(normalised, timestamps, spec, options.window, period)


def recent_deviations(
    normalised: np.ndarray, timestamps: np.ndarray | None, spec: RecentSpec, size: int, period: float
) -> np.ndarray:
    """Recent-level deviation of every stride-1 window (NaN where its reference is incomplete or spans a gap)."""
    valid = spacing.gap_free(timestamps, spec.span(size), period) if timestamps is not None else None
    return series_deviation(normalised.astype(np.float64), size, spec, valid)


def fit_arrays(
    values: np.ndarray,
    channels: list[str],
    directory: Path,
    options: FitOptions,
    source: str = "arrays",
    timestamps: np.ndarray | None = None,
) -> FitResult:
    """Fit, calibrate and export a model for `values` (normal samples x channels) into `directory`."""
    from edge_agent.tasks.sensor.export import export_all

    _check_rows(values, options, source)
    warnings = _constant_warnings(values, channels)
    options = rank_for(options, len(channels), warnings)
    found = spacing.measure(timestamps) if timestamps is not None else None
    if found is not None and found.warning():
        warnings.append(f"{source}: {found.warning()}")
    period = found.period_s if found is not None else 0.0
    mean, std = normalisation(values)
    normalised = ((values - mean) / std).astype(np.float32)
    windows, chosen = training_windows(normalised, timestamps, options.window, period)
    spec, recent = recent_test(normalised, timestamps, options, period, warnings)
    recent = recent[chosen] if recent is not None else None
    spectral_spec, spectral = spectral_test(normalised, timestamps, options, period, warnings)
    spectral = spectral[chosen] if spectral is not None else None
    base = SensorParams(options.window, options.stride, tuple(channels), mean, std, np.ones(len(channels), np.float32))
    logger.info("fitting %s autoencoder on %d windows of %s", options.train.architecture, len(windows), source)
    weights = train_autoencoder(windows, options.train)
    params, threshold, scores = calibrate(weights, windows, base, options)
    levels = options.levels_for(len(channels))
    likelihood_fit = calibrate_likelihood(windows, params, options.train, weights, levels, recent, spectral)
    for message in warnings:
        logger.warning("%s", message)
    files = export_all(weights, directory, windows, tflite=options.tflite)
    manifest = build_manifest(options, params, threshold, files, directory, len(values), source)
    manifest = with_run_settings(manifest, likelihood_fit.calibration, period, options, spec, spectral_spec)
    write_manifest(directory, manifest)
    return FitResult(directory, manifest, weights, params, scores, files, warnings, likelihood_fit.likelihood)


def with_run_settings(
    manifest: Manifest,
    calibration: Calibration,
    period: float,
    options: FitOptions,
    recent: RecentSpec | None = None,
    spectral: SpectralSpec | None = None,
) -> Manifest:
    """Add the likelihood calibration, the sample period, the span tests' references and the debounce settings."""
    params = dict(manifest.params)
    params["calibration"] = calibration.to_manifest()
    if recent is not None:
        params["recent"] = recent.to_manifest()
    if spectral is not None:
        params["spectral"] = spectral.to_manifest()
    if period > 0:
        params["sampling"] = {"period_s": float(f"{period:.6g}"), "gap_factor": spacing.GAP_FACTOR}
    params["decision"] = options.debounce.to_manifest()
    if len(params["channels"]) == 1:  # measured: faster one-channel starts; many channels' extreme tails mislead
        params["decision"]["fast_likelihood"] = FAST_LIKELIHOOD
    adapt_s = options.adapt_for(len(params["channels"]))
    if adapt_s is not None:  # measured on NAB-like one-channel streams: real streams leave their fit range
        params["decision"]["adapt_s"] = round(adapt_s, 3)
    thresholds = {**manifest.thresholds, "likelihood": options.likelihood_threshold}
    return manifest.model_copy(update={"params": params, "thresholds": thresholds})


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
        "level_test": options.levels_for(len(params.channels)),
        "recent_test": options.recent_for(len(params.channels)),
        "spectral_test": options.spectral_for(len(params.channels)),
        "source": source,
        **({"window": options.window_text} if options.window_text else {}),
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
