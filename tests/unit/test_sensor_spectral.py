"""The spectral-residual test: a spike or a level shift's onset stands out against a cycle and noise, it only
looks back, the device's streaming tracker scores as the fit does, and calibrated on normal data a 0.99
threshold is passed by about 1% of fresh normal windows."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from edge_agent.errors import ManifestError
from edge_agent.tasks.sensor.calibration import ExtraTests, fit_calibration, parse_calibration
from edge_agent.tasks.sensor.spectral import SpectralSpec, parse_spectral, series_saliency, spectral_tracker

SIZE = 10
SPEC = SpectralSpec(30)
FIRST = SPEC.span(SIZE) - SIZE  # the first window with a whole span


def cycle(rows: int, seed: int) -> np.ndarray:
    """A slow cycle of 10 noise spreads with smoothed noise (rows x 1)."""
    rng = np.random.default_rng(seed)
    noise = np.convolve(rng.normal(size=rows + 4), np.ones(5) / 5, "valid")
    return (5.0 * np.sin(2 * np.pi * np.arange(rows) / 500) + 0.5 * noise)[:, None]


def windows_of(series: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(sliding_window_view(series, SIZE, axis=0).transpose(0, 2, 1))


def test_a_spike_and_a_level_shift_stand_out_and_the_cycle_does_not() -> None:
    normal = series_saliency(cycle(2000, 1), SIZE, SPEC)[FIRST:, 0]
    high = float(np.quantile(normal, 0.99))
    spiked, shifted = cycle(2000, 1), cycle(2000, 1)
    spiked[1500] += 3.0
    shifted[1500:] += 3.0
    after = slice(1500 - SIZE + 2, 1500 - SIZE + 20)  # windows ending 1 to 18 samples after the change
    assert series_saliency(spiked, SIZE, SPEC)[after, 0].min() > 2 * high
    assert series_saliency(shifted, SIZE, SPEC)[after, 0].mean() > high
    assert np.median(normal) < high / 2


def test_it_only_looks_back() -> None:
    series = cycle(600, 2)
    changed = series.copy()
    changed[400:] += np.random.default_rng(0).normal(size=(200, 1)) * 5
    before, after = (series_saliency(s, SIZE, SPEC) for s in (series, changed))
    last_untouched = 400 - SIZE  # window k ends at sample k + SIZE - 1
    np.testing.assert_array_equal(before[: last_untouched + 1], after[: last_untouched + 1])
    assert not np.allclose(before[last_untouched + 1 :], after[last_untouched + 1 :])


@pytest.mark.parametrize("batch", [1, 7, 256])
def test_the_device_tracker_scores_every_window_as_the_fit_does(batch: int) -> None:
    series = np.concatenate([cycle(500, 3), cycle(500, 4)], axis=1)
    windows = windows_of(series)
    tracker = spectral_tracker(SPEC, SIZE, 1, 2)
    gaps = np.zeros(len(windows), dtype=bool)
    got = np.concatenate([tracker.score(windows[i : i + batch], gaps[i : i + batch]) for i in range(0, 491, batch)])
    np.testing.assert_allclose(got, series_saliency(series, SIZE, SPEC), rtol=1e-9, equal_nan=True)
    assert np.isnan(got[:FIRST]).all() and not np.isnan(got[FIRST:]).any()


def test_a_gap_restarts_the_reference() -> None:
    windows = windows_of(cycle(400, 5))
    gaps = np.zeros(len(windows), dtype=bool)
    gaps[100:110] = True
    tracker = spectral_tracker(SPEC, SIZE, 1, 1)
    got = np.concatenate([tracker.score(windows[i : i + 64], gaps[i : i + 64]) for i in range(0, len(windows), 64)])
    unscored = set(np.flatnonzero(np.isnan(got[:, 0])).tolist())
    assert set(range(100, 110 + FIRST)) <= unscored and 110 + FIRST not in unscored


def test_calibrated_a_0_99_threshold_gives_about_1_percent_on_fresh_normal_data() -> None:
    rng = np.random.default_rng(7)

    def normal_windows(seed: int) -> tuple[np.ndarray, np.ndarray]:
        spectral = series_saliency(cycle(6000, seed), SIZE, SPEC)
        errors = rng.lognormal(0.0, 0.3, size=(len(spectral), 1))
        return errors, spectral

    errors, spectral = normal_windows(10)
    calibration = fit_calibration(errors, np.zeros(1, dtype=bool), ExtraTests(spectral=spectral))
    assert calibration.spectral_loc is not None and calibration.spectral_spread is not None
    shares = []
    for seed in (11, 12, 13):
        fresh_errors, fresh = normal_windows(seed)
        likelihood = calibration.likelihood(fresh_errors, ExtraTests(spectral=fresh))[FIRST:]
        shares.append(float(np.mean(likelihood > 0.99)))
    assert 0.004 < np.mean(shares) < 0.025, shares
    spiked = cycle(6000, 11)
    spiked[3000] += 3.0
    z = calibration.spectral_z(series_saliency(spiked, SIZE, SPEC))
    assert z is not None and z[3000 - SIZE + 2, 0] > 3.0  # far beyond anything normal


def test_the_spec_and_the_calibration_round_trip_through_the_manifest() -> None:
    assert parse_spectral(SPEC.to_manifest()) == SPEC and parse_spectral(None) is None
    errors = np.random.default_rng(0).lognormal(size=(500, 1))
    calibration = fit_calibration(
        errors, np.zeros(1, dtype=bool), ExtraTests(spectral=series_saliency(cycle(509, 0), SIZE, SPEC))
    )
    again = parse_calibration(calibration.to_manifest(), 1)
    assert again.spectral_loc is not None and again.spectral_spread is not None
    np.testing.assert_allclose(again.spectral_loc, calibration.spectral_loc, rtol=1e-6)
    without = {k: v for k, v in calibration.to_manifest().items() if not k.startswith("spectral")}
    assert parse_calibration(without, 1).spectral_loc is None  # a model fitted before the test


@pytest.mark.parametrize("raw", [{"reference": 3}, {"length": 30}, [30]])
def test_bad_manifest_fields_are_named(raw: object) -> None:
    with pytest.raises(ManifestError, match=r"params\.spectral"):
        parse_spectral(raw)
