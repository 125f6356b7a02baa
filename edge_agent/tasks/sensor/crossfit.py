"""Errors of normal windows the network did not see, for calibrating the likelihood (K contiguous folds).

Reconstruction errors on the training windows themselves are too small (the network fitted them),
so a likelihood calibrated on them would call ordinary new data rare. Each fold is scored by a
network fitted on the other folds, with a window's length left out on both sides so that
overlapping windows do not leak between them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from itertools import pairwise

import numpy as np

from edge_agent.tasks.sensor.calibration import Calibration, ExtraTests, fit_calibration
from edge_agent.tasks.sensor.scoring import ERROR_FLOOR, SensorParams, by_channel, channel_errors
from edge_agent.tasks.sensor.training import TrainSettings, Weights, train_autoencoder

logger = logging.getLogger(__name__)
FOLDS = 3


@dataclass
class LikelihoodFit:
    """The calibration and the likelihood it gives each normal window (cross-fitted)."""

    calibration: Calibration
    likelihood: np.ndarray
    crossfitted: bool


def crossfit_errors(windows: np.ndarray, params: SensorParams, settings: TrainSettings) -> np.ndarray | None:
    """N x C relative errors, each window scored by a network fitted without it; None if the data are too few."""
    count, size = len(windows), params.size
    bounds = np.linspace(0, count, FOLDS + 1).astype(int).tolist()
    out = np.empty((count, len(params.channels)), dtype=np.float32)
    for first, last in pairwise(bounds):
        keep = np.ones(count, dtype=bool)
        keep[max(0, first - size) : min(count, last + size)] = False
        if keep.sum() < max(2 * settings.latent, 2 * size):
            return None
        fold = train_autoencoder(windows[keep], settings)
        held = windows[first:last]
        out[first:last] = channel_errors(held, fold.reconstruct(held), params)
    return out


def calibrate_likelihood(
    windows: np.ndarray,
    params: SensorParams,
    settings: TrainSettings,
    weights: Weights,
    level_test: bool = False,
    recent: np.ndarray | None = None,
    spectral: np.ndarray | None = None,
) -> LikelihoodFit:
    """Fit the likelihood calibration on cross-fitted errors (training errors when the data are too few), with
    the recent-level deviations and the spectral-residual ratios of the same windows when the model has them."""
    errors = crossfit_errors(windows, params, replace(settings, seed=settings.seed + 1))
    crossfitted = errors is not None
    if errors is None:
        logger.warning("too few normal windows to cross-fit: the likelihood is calibrated on training errors")
        errors = channel_errors(windows, weights.reconstruct(windows), params)
    floored = np.asarray(params.error_scale) <= ERROR_FLOOR
    levels = window_levels(windows) if level_test else None
    extra = ExtraTests(levels, recent, spectral)
    calibration = fit_calibration(errors.astype(np.float64), floored, extra)
    likelihood = calibration.likelihood(errors.astype(np.float64), extra)
    return LikelihoodFit(calibration, likelihood, crossfitted)


def window_levels(windows: np.ndarray) -> np.ndarray:
    """N x C mean of each channel over each normalised window (its level; a shift or drift moves it)."""
    levels: np.ndarray = by_channel(windows).mean(axis=2).astype(np.float64)
    return levels
