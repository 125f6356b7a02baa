"""The spectral-residual test: how salient the newest samples are against the stretch before them.

The spectral residual (SR) of a stretch of samples is its log amplitude spectrum minus the local
average of that spectrum; transformed back with the stretch's own phases it gives a saliency map,
high where the series does something its usual spectrum does not (a spike, the onset of a level
shift, a burst of new variance) and about flat over a daily cycle, a slow wander or steady noise.
Per channel and per window, the test is the largest saliency over the last HOLD windows divided by
the mean saliency of the `reference` samples before them. The stretch ends with the window's last
sample (only past samples are used); like the SR service, a few samples extrapolated from the
newest ones are appended before the transform, so the newest samples do not sit at the edge of the
stretch where every transform is unreliable. Saliency is scale-free (the ratio of each frequency's
amplitude to its neighbours'), so the test needs no floor from the data; its log is calibrated on
the normal fit data like the reconstruction errors and joins the likelihood as one more test per
channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.errors import ManifestError
from edge_agent.tasks.sensor.recent import HOLD, SpanTracker

AVERAGE = 3  # bins of the local average of the log amplitude spectrum (the SR service's q)
EXTEND = 5  # samples extrapolated past the newest (its kappa)
SLOPE_POINTS = 5  # newest samples whose mean slope the extrapolation follows (its m)
TINY = 1e-8  # relative amplitude below which a frequency counts as absent (log of 0)
MEAN_FLOOR = 1e-6  # a reference whose saliency is all but zero still divides by something


@dataclass(frozen=True)
class SpectralSpec:
    """How many samples before the tested stretch form the saliency's reference."""

    reference: int

    def span(self, size: int) -> int:
        """Samples a window's test needs: the reference, then HOLD windows ending with the window."""
        return self.reference + HOLD * size

    def to_manifest(self) -> dict[str, Any]:
        return {"reference": self.reference}


def parse_spectral(raw: Any) -> SpectralSpec | None:
    """params.spectral of a manifest, or None when the model has no spectral-residual test."""
    if raw is None:
        return None
    try:
        assert isinstance(raw, Mapping)
        spec = SpectralSpec(int(raw["reference"]))
    except (AssertionError, KeyError, TypeError, ValueError) as exc:
        raise ManifestError("params.spectral must be {reference: samples >= 8}") from exc
    if spec.reference < 8:
        raise ManifestError(f"params.spectral must have reference >= 8, got {dict(raw)}")
    return spec


def extended(stretches: np.ndarray) -> np.ndarray:
    """M x L x C stretches with EXTEND samples appended (M x (L + EXTEND) x C), as the SR service does: each is
    the sample SLOPE_POINTS - 1 before the newest, moved on by SLOPE_POINTS x the mean slope from the
    SLOPE_POINTS samples before the newest to it."""
    newest = stretches[:, -1:, :]
    back = np.arange(1, SLOPE_POINTS + 1, dtype=np.float64)[None, :, None]
    slope = ((newest - stretches[:, -1 - SLOPE_POINTS : -1][:, ::-1]) / back).mean(axis=1, keepdims=True)
    estimate = stretches[:, -SLOPE_POINTS : -SLOPE_POINTS + 1] + slope * SLOPE_POINTS
    return np.concatenate([stretches, np.repeat(estimate, EXTEND, axis=1)], axis=1)


def saliency(stretches: np.ndarray) -> np.ndarray:
    """M x L x C saliency maps of M x L x C stretches (the extrapolated tail dropped again)."""
    series = extended(stretches)
    series = series - series.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(series, axis=1)
    amplitude = np.abs(spectrum)
    tiny = TINY * np.maximum(amplitude.max(axis=1, keepdims=True), TINY)
    log_amp = np.log(np.maximum(amplitude, tiny))
    log_amp[:, 0] = log_amp[:, 1]  # the level was removed: its bin must not pull down its neighbours' average
    half = AVERAGE // 2  # an odd width, centred; the end bins repeat outwards
    padded = np.concatenate([np.repeat(log_amp[:, :1], half, 1), log_amp, np.repeat(log_amp[:, -1:], half, 1)], 1)
    local = sum(padded[:, k : k + log_amp.shape[1]] for k in range(AVERAGE)) / AVERAGE
    residual = np.exp(log_amp - local) * (spectrum / np.maximum(amplitude, tiny))
    residual[:, 0] = 0.0  # the level is not a pattern
    out: np.ndarray = np.abs(np.fft.irfft(residual, n=series.shape[1], axis=1))[:, : stretches.shape[1]]
    return out


def saliency_at(series: np.ndarray, ends: np.ndarray, spec: SpectralSpec, hold: int) -> np.ndarray:
    """len(ends) x C: for the span of samples ending just before each index in `ends` (exclusive, each at least
    reference + hold), the largest saliency of its last `hold` samples over the mean saliency of the reference."""
    span = spec.reference + hold
    index = ends[:, None] - span + np.arange(span)[None, :]
    maps = saliency(series[index])
    reference = np.maximum(maps[:, : spec.reference].mean(axis=1), MEAN_FLOOR)
    out: np.ndarray = maps[:, spec.reference :].max(axis=1) / reference
    return out


def series_saliency(series: np.ndarray, size: int, spec: SpectralSpec, valid: np.ndarray | None = None) -> np.ndarray:
    """The test of every stride-1 window of a normalised series (L x C), NaN where the span is incomplete.

    `valid` marks the stretches of span samples (by first sample) that hold no gap; the others are NaN too.
    """
    count = len(series) - size + 1
    out = np.full((max(count, 0), series.shape[1]), np.nan)
    first_scored = spec.span(size) - size
    if count <= first_scored:
        return out
    ends = np.arange(first_scored, count) + size
    for start in range(0, len(ends), 1024):  # a bounded working set however long the fit data
        part = ends[start : start + 1024]
        out[first_scored + start : first_scored + start + len(part)] = saliency_at(series, part, spec, HOLD * size)
    if valid is not None:
        usable = np.zeros(count, dtype=bool)
        usable[first_scored:] = valid[: count - first_scored]
        out[~usable] = np.nan
    return out


def spectral_tracker(spec: SpectralSpec, size: int, stride: int, channels: int) -> SpanTracker:
    """The spectral-residual test on the device, with the recent-change test's bookkeeping of runs and gaps."""
    return SpanTracker(size, stride, channels, spec.span(size), lambda s, e: saliency_at(s, e, spec, HOLD * size))
