"""Manifest params of the sensor job, normalisation, scores and the frozen-sensor check (pure numpy)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edge_agent.errors import ManifestError
from edge_agent.tasks.sensor.scoring import (
    SensorParams,
    channel_errors,
    frozen_channels,
    normalise_into,
    parse_params,
    window_scores,
)


def params(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "window": {"size": 4, "stride": 2},
        "channels": ["a", "b"],
        "normalisation": {"mean": [10.0, 0.0], "std": [2.0, 0.5]},
        "error_scale": [0.5, 0.25],
        "flatline": {"min_range": [0.4, 0.0]},
    }
    return base | extra


def test_params_round_trip_through_the_manifest_form() -> None:
    parsed = parse_params(params())
    assert parsed.window.size == 4 and parsed.window.stride == 2 and parsed.window.channels == ("a", "b")
    again = parse_params(parsed.to_manifest())
    assert np.array_equal(again.std, parsed.std) and again.min_range is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"window": {"stride": 1}}, "params.window"),
        ({"normalisation": {"mean": [1.0], "std": [1.0, 1.0]}}, "normalisation.mean must hold 2"),
        ({"normalisation": {"mean": [1.0, 1.0], "std": [1.0, 0.0]}}, "std values must be > 0"),
        ({"error_scale": [1.0, float("nan")]}, "error_scale must hold 2 finite"),
        ({"channels": []}, "must not be empty"),
    ],
)
def test_bad_params_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_params(params(**change))


def test_normalise_and_score() -> None:
    p = parse_params(params())
    buf = np.zeros((3, 4, 2), np.float32)
    windows = [np.full((4, 2), [12.0, 1.0], np.float32)] * 2
    z = normalise_into(buf, windows, p)
    assert z.shape == (2, 4, 2) and np.allclose(z, [1.0, 2.0])
    errors = channel_errors(z, np.zeros_like(z), p)
    assert np.allclose(errors, [[2.0, 8.0], [2.0, 8.0]])  # |z| / error_scale
    assert np.allclose(window_scores(errors), [5.0, 5.0])


def test_frozen_channel_is_found_only_where_normal_data_always_moves() -> None:
    p = parse_params(params())
    rng = np.random.default_rng(0)
    moving = rng.normal(size=(3, 4, 2)).astype(np.float32)
    assert frozen_channels(moving, p) is None
    stuck = moving.copy()
    stuck[1, :, 0] = 0.7  # channel a stuck in window 1
    stuck[2, :, 1] = 0.3  # channel b is allowed to sit still (min_range 0)
    mask = frozen_channels(stuck, p)
    assert mask is not None and mask.tolist() == [[False, False], [True, False], [False, False]]


def test_without_flatline_params_there_is_no_check() -> None:
    raw = params()
    del raw["flatline"]
    p: SensorParams = parse_params(raw)
    assert frozen_channels(np.zeros((1, 4, 2), np.float32), p) is None
