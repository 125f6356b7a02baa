"""The calibrated likelihood: its meaning on normal errors, one channel alarming alone, the Sidak correction."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.errors import ManifestError
from edge_agent.tasks.sensor.calibration import fit_calibration, parse_calibration
from edge_agent.tasks.sensor.gauss import isf, sf


def normal_errors(rows: int, channels: int, seed: int) -> np.ndarray:
    """Relative reconstruction errors of normal windows: log-normal around 1, as the task computes them."""
    rng = np.random.default_rng(seed)
    return np.exp(rng.normal(0.0, 0.3, size=(rows, channels)))


def test_tail_functions_match_the_normal_distribution() -> None:
    z = np.array([-2.0, 0.0, 1.0, 2.3263478740408408, 3.090232306167813, 6.0])
    assert sf(z) == pytest.approx([0.9772498680518208, 0.5, 0.15865525393145707, 0.01, 0.001, 9.865876450377e-10])
    assert isf(sf(z)) == pytest.approx(z, abs=1e-6)
    assert sf(np.tile(z, 3)) == pytest.approx(np.tile(sf(z), 3), rel=2e-7)  # the vectorised path agrees


@pytest.mark.parametrize("channels", [1, 5, 40])
def test_a_threshold_of_0_99_is_passed_by_about_1_percent_of_normal_windows(channels: int) -> None:
    calibration = fit_calibration(normal_errors(2000, channels, seed=1), np.zeros(channels, dtype=bool))
    likelihood = calibration.likelihood(normal_errors(50_000, channels, seed=2))
    assert 0.006 < np.mean(likelihood > 0.99) < 0.016
    assert np.mean(likelihood > 0.999) < 0.003
    assert np.all((likelihood >= 0) & (likelihood <= 1))


def test_one_channel_far_outside_its_range_is_enough_among_many() -> None:
    channels = 52
    calibration = fit_calibration(normal_errors(2000, channels, seed=3), np.zeros(channels, dtype=bool))
    windows = normal_errors(200, channels, seed=4)
    windows[:, 17] *= 6.0  # one channel six times its usual error: the mean over 52 channels moves ~10%
    assert np.mean(calibration.likelihood(windows) > 0.999) > 0.9
    assert np.mean(windows.mean(axis=1) > np.quantile(normal_errors(2000, channels, 3).mean(axis=1), 0.999)) < 0.5


def test_a_channel_that_never_erred_counts_errors_within_its_floor_as_normal() -> None:
    errors = normal_errors(1000, 3, seed=5)
    errors[:, 2] = 0.0  # a constant channel the network reconstructs exactly
    calibration = fit_calibration(errors, np.array([False, False, True]))
    fresh = normal_errors(1000, 3, seed=6)
    fresh[:, 2] = 0.6  # int8 noise, under the channel's floor
    assert np.mean(calibration.likelihood(fresh) > 0.99) < 0.03
    fresh[:, 2] = 5.0  # the channel moved
    assert np.all(calibration.likelihood(fresh) > 0.999)


def test_calibration_round_trips_through_the_manifest_and_bad_fields_are_named() -> None:
    calibration = fit_calibration(normal_errors(500, 2, seed=7), np.zeros(2, dtype=bool))
    raw = calibration.to_manifest()
    back = parse_calibration(raw, 2)
    errors = normal_errors(10, 2, seed=8)
    assert back.likelihood(errors) == pytest.approx(calibration.likelihood(errors), rel=1e-6)
    with pytest.raises(ManifestError, match=r"params\.calibration\.channel_loc must hold 3 finite numbers"):
        parse_calibration(raw, 3)
    with pytest.raises(ManifestError, match=r"params\.calibration\.final must be finite with a spread > 0"):
        parse_calibration({**raw, "final": [0.0, 0.0]}, 2)
