"""The calibrated anomaly likelihood: how unusual a window's errors are against normal errors, in [0, 1].

Three steps, each a z-score of log relative errors fitted on cross-fitted normal windows:

- joint: the window's mean relative error over channels (the raw score);
- channels: each channel's own relative error; the largest is turned into a tail probability and
  Sidak-corrected for the number of channels, so one channel far outside its range can alarm
  without many channels raising more false alarms than one;
- final: the larger of the two z-scores, mapped so that its median is 0 and its 99th percentile on
  normal data is 2.326. The likelihood is the normal CDF of that, so a threshold of 0.99 is passed
  by about 1% of normal windows and 0.999 by about 0.1%, whatever the machine or model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.errors import DataError, ManifestError
from edge_agent.tasks.sensor.gauss import isf, sf

MIN_SPREAD = 0.1  # log units: errors within ~10% of their usual level are never surprising
FLOORED_LOWER = 1.0  # a channel with no normal error of its own: errors below its floor count as normal
LOWER = 1e-3
MIN_LEVEL_SPREAD = 0.05  # normalised units: a window mean within 5% of a channel's std of normal is never rare
Z99 = 2.3263478740408408
RECENT_LOWER = 1e-3  # a window exactly at its reference median
MIN_COMPLETE = 50  # windows with every test needed to fit the recent test and the final map on them


@dataclass(frozen=True)
class ExtraTests:
    """The per-channel tests beside the reconstruction errors, each N x C or None: the windows' mean levels
    (normalised units) for the level test, their recent-change deviations and their spectral-residual ratios
    (NaN where a window had no whole reference before it)."""

    levels: np.ndarray | None = None
    recent: np.ndarray | None = None
    spectral: np.ndarray | None = None


NO_EXTRA = ExtraTests()


@dataclass
class Calibration:
    """Location/spread of log relative errors per channel and jointly, and the final affine map."""

    channel_loc: np.ndarray
    channel_spread: np.ndarray
    channel_lower: np.ndarray
    joint_loc: float
    joint_spread: float
    final_loc: float = 0.0
    final_spread: float = 1.0
    level_loc: np.ndarray | None = None
    level_spread: np.ndarray | None = None
    recent_loc: np.ndarray | None = None
    recent_spread: np.ndarray | None = None
    spectral_loc: np.ndarray | None = None
    spectral_spread: np.ndarray | None = None

    def log_errors(self, errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """N x C relative errors -> (N x C per-channel log errors, N joint log errors)."""
        clamped = np.maximum(errors, self.channel_lower)
        return np.log(clamped), np.log(clamped.mean(axis=1))

    def statistic(self, errors: np.ndarray, extra: ExtraTests = NO_EXTRA) -> np.ndarray:
        """The combined z-score per window, before the final map."""
        return self.statistic_of_logs(*self.log_errors(errors), extra)

    def recent_z(self, recent: np.ndarray) -> np.ndarray | None:
        """N x C z of the recent-change deviations (NaN, no reference yet: -inf), where the calibration has them."""
        return _log_z(recent, self.recent_loc, self.recent_spread)

    def spectral_z(self, spectral: np.ndarray) -> np.ndarray | None:
        """N x C z of the spectral-residual ratios (NaN, no reference yet: -inf), where the calibration has them."""
        return _log_z(spectral, self.spectral_loc, self.spectral_spread)

    def level_z(self, levels: np.ndarray) -> np.ndarray | None:
        """N x C one-sided z of each window's mean level (two-sided tail), where the calibration has levels."""
        if self.level_loc is None or self.level_spread is None:
            return None
        two_sided = 2.0 * sf(np.abs(levels - self.level_loc) / self.level_spread)
        return isf(np.minimum(two_sided, 1.0))

    def statistic_of_logs(self, per_channel: np.ndarray, joint: np.ndarray, extra: ExtraTests = NO_EXTRA) -> np.ndarray:
        z_joint = (joint - self.joint_loc) / self.joint_spread
        z_channels = (per_channel - self.channel_loc) / self.channel_spread
        tests = [
            self.level_z(extra.levels) if extra.levels is not None else None,
            self.recent_z(extra.recent) if extra.recent is not None else None,
            self.spectral_z(extra.spectral) if extra.spectral is not None else None,
        ]
        more = [z for z in tests if z is not None]
        if more:
            z_channels = np.concatenate([z_channels, *more], axis=1)
        z_max = z_channels.max(axis=1)
        count = z_channels.shape[1]
        if count > 1:
            p_min = sf(z_max)
            z_max = isf(-np.expm1(count * np.log1p(-np.minimum(p_min, 1.0 - 1e-16))))  # Sidak
        combined: np.ndarray = np.maximum(z_joint, z_max)
        return combined

    def z_of_logs(self, per_channel: np.ndarray, joint: np.ndarray, extra: ExtraTests = NO_EXTRA) -> np.ndarray:
        statistic = self.statistic_of_logs(per_channel, joint, extra)
        out: np.ndarray = (statistic - self.final_loc) / self.final_spread
        return out

    def z(self, errors: np.ndarray, extra: ExtraTests = NO_EXTRA) -> np.ndarray:
        """Calibrated z per window: about N(0, 1) in its upper tail on normal data."""
        return self.z_of_logs(*self.log_errors(errors), extra)

    def likelihood(self, errors: np.ndarray, extra: ExtraTests = NO_EXTRA) -> np.ndarray:
        """P(a normal window scores lower than this one), per window, in [0, 1]."""
        out: np.ndarray = 1.0 - sf(self.z(errors, extra))
        return out

    def to_manifest(self) -> dict[str, Any]:
        return {
            "channel_loc": _floats(self.channel_loc),
            "channel_spread": _floats(self.channel_spread),
            "channel_lower": _floats(self.channel_lower),
            "joint": [float(f"{self.joint_loc:.8g}"), float(f"{self.joint_spread:.8g}")],
            "final": [float(f"{self.final_loc:.8g}"), float(f"{self.final_spread:.8g}")],
            **(
                {"level_loc": _floats(self.level_loc), "level_spread": _floats(self.level_spread)}
                if self.level_loc is not None and self.level_spread is not None
                else {}
            ),
            **(
                {"recent_loc": _floats(self.recent_loc), "recent_spread": _floats(self.recent_spread)}
                if self.recent_loc is not None and self.recent_spread is not None
                else {}
            ),
            **(
                {"spectral_loc": _floats(self.spectral_loc), "spectral_spread": _floats(self.spectral_spread)}
                if self.spectral_loc is not None and self.spectral_spread is not None
                else {}
            ),
        }


def _log_z(values: np.ndarray, loc: np.ndarray | None, spread: np.ndarray | None) -> np.ndarray | None:
    """N x C z of log test values against their normal location and spread (NaN: -inf); None without them."""
    if loc is None or spread is None:
        return None
    z: np.ndarray = (np.log(np.maximum(values, RECENT_LOWER)) - loc) / spread
    return np.where(np.isnan(z), -np.inf, z)


def _floats(values: np.ndarray) -> list[float]:
    return [float(f"{v:.8g}") for v in np.asarray(values, dtype=np.float64)]


def _location_spread(logs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean along axis 0 and the upper-tail spread (95th percentile above the mean / 1.645), floored."""
    loc = logs.mean(axis=0)
    spread = np.maximum((np.quantile(logs, 0.99, axis=0) - loc) / Z99, MIN_SPREAD)
    return loc, spread


def fit_calibration(errors: np.ndarray, floored: np.ndarray, extra: ExtraTests = NO_EXTRA) -> Calibration:
    """Calibration from N x C relative errors of normal windows the model did not see (cross-fitted), and
    optionally the extra tests of the same windows."""
    lower = np.where(floored, FLOORED_LOWER, LOWER)
    base = Calibration(np.zeros(errors.shape[1]), np.ones(errors.shape[1]), lower, 0.0, 1.0)
    per_channel, joint = base.log_errors(errors)
    loc, spread = _location_spread(per_channel)
    joint_loc, joint_spread = _location_spread(joint[:, None])
    calibration = Calibration(loc, spread, lower, float(joint_loc[0]), float(joint_spread[0]))
    if extra.levels is not None:
        calibration.level_loc = np.median(extra.levels, axis=0)
        calibration.level_spread = np.maximum(extra.levels.std(axis=0), MIN_LEVEL_SPREAD)
    if extra.recent is not None:
        calibration.recent_loc, calibration.recent_spread = _span_location_spread(extra.recent, "recent-change")
    if extra.spectral is not None:
        calibration.spectral_loc, calibration.spectral_spread = _span_location_spread(
            extra.spectral, "spectral-residual"
        )
    t = calibration.statistic(errors, extra)
    tests = [v for v in (extra.recent, extra.spectral) if v is not None]
    if tests:  # the final map on windows that had every test, where enough of them did
        complete = ~np.isnan(np.concatenate(tests, axis=1)).any(axis=1)
        t = t[complete] if complete.sum() >= MIN_COMPLETE else t
    median = float(np.median(t))
    calibration.final_loc = median
    calibration.final_spread = max((float(np.quantile(t, 0.99)) - median) / Z99, MIN_SPREAD)
    return calibration


def _span_location_spread(values: np.ndarray, test: str) -> tuple[np.ndarray, np.ndarray]:
    """Location and spread per channel of a span test's log values on the normal windows that have them."""
    logs = np.log(np.maximum(values, RECENT_LOWER))
    locs, spreads = [], []
    for column in logs.T:
        known = column[~np.isnan(column)]
        if len(known) < MIN_COMPLETE:
            raise DataError(
                f"{len(known)} normal windows have a whole reference before them for the {test} test; "
                f"at least {MIN_COMPLETE} are needed: give more normal data, a shorter --reference or "
                f"--{test.split('-', maxsplit=1)[0]}-test off"
            )
        loc, spread = _location_spread(known[:, None])
        locs.append(loc[0])
        spreads.append(spread[0])
    return np.array(locs), np.array(spreads)


def _pair(raw: Any, name: str) -> tuple[float, float]:
    try:
        loc, spread = (float(v) for v in raw)
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"params.calibration.{name} must be [location, spread]") from exc
    if not (np.isfinite(loc) and np.isfinite(spread) and spread > 0):
        raise ManifestError(f"params.calibration.{name} must be finite with a spread > 0, got {raw}")
    return loc, spread


def _vector(raw: Mapping[str, Any], name: str, channels: int) -> np.ndarray:
    try:
        values = np.asarray(raw[name], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"params.calibration.{name} must be a list of {channels} numbers") from exc
    if values.shape != (channels,) or not np.all(np.isfinite(values)):
        raise ManifestError(f"params.calibration.{name} must hold {channels} finite numbers, one per channel")
    return values


def parse_calibration(raw: Mapping[str, Any], channels: int) -> Calibration:
    """Read params.calibration; ManifestError names the field that is wrong."""
    vectors = [_vector(raw, name, channels) for name in ("channel_loc", "channel_spread", "channel_lower")]
    if np.any(vectors[1] <= 0) or np.any(vectors[2] <= 0):
        raise ManifestError("params.calibration.channel_spread and channel_lower values must be > 0")
    joint = _pair(raw.get("joint"), "joint")
    final = _pair(raw.get("final"), "final")
    calibration = Calibration(vectors[0], vectors[1], vectors[2], *joint, *final)
    if "level_loc" in raw or "level_spread" in raw:
        calibration.level_loc, calibration.level_spread = (_vector(raw, k, channels) for k in LEVEL_FIELDS)
        if np.any(calibration.level_spread <= 0):
            raise ManifestError("params.calibration.level_spread values must be > 0")
    if "recent_loc" in raw or "recent_spread" in raw:
        calibration.recent_loc, calibration.recent_spread = (_vector(raw, k, channels) for k in RECENT_FIELDS)
        if np.any(calibration.recent_spread <= 0):
            raise ManifestError("params.calibration.recent_spread values must be > 0")
    if "spectral_loc" in raw or "spectral_spread" in raw:
        calibration.spectral_loc, calibration.spectral_spread = (_vector(raw, k, channels) for k in SPECTRAL_FIELDS)
        if np.any(calibration.spectral_spread <= 0):
            raise ManifestError("params.calibration.spectral_spread values must be > 0")
    return calibration


LEVEL_FIELDS = ("level_loc", "level_spread")
RECENT_FIELDS = ("recent_loc", "recent_spread")
SPECTRAL_FIELDS = ("spectral_loc", "spectral_spread")
