"""Everything a sensor task needs from its config and manifest, checked once: what `check` and `run` both refuse.

`sensor_settings(config, manifest)` raises ManifestError (a model problem) or ConfigError (a config
problem) naming the field and the fix; the task's constructor calls it, and `edge-agent check` can
call it without loading a runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.errors import ConfigError, ConfigIssue, ManifestError
from edge_agent.runtime.manifest import Manifest
from edge_agent.tasks.sensor.calibration import Calibration, parse_calibration
from edge_agent.tasks.sensor.config import SensorAnomalyTaskConfig
from edge_agent.tasks.sensor.decision import DecisionSettings
from edge_agent.tasks.sensor.gauss import isf
from edge_agent.tasks.sensor.recent import RecentSpec, parse_recent
from edge_agent.tasks.sensor.scoring import DECODER, SensorParams, parse_params
from edge_agent.tasks.sensor.spectral import SpectralSpec, parse_spectral

DEFAULT_LIKELIHOOD = 0.999


@dataclass(frozen=True)
class SensorSettings:
    """The checked settings: window params, calibration, what the state follows and its thresholds."""

    params: SensorParams
    calibration: Calibration | None
    decide_on: str
    score_threshold: float
    likelihood_threshold: float
    decision: DecisionSettings
    period_s: float | None
    recent: RecentSpec | None = None
    adapt_s: float | None = None
    spectral: SpectralSpec | None = None


def _config_error(field: str, message: str, hint: str) -> ConfigError:
    return ConfigError("task", [ConfigIssue(f"task.{field}", message, None, hint)])


def _positive(value: Any, what: str, name: str) -> float:
    if value is None:
        raise ManifestError(f"model {name!r}: {what} is missing and the config sets none")
    number = float(value)
    if not np.isfinite(number) or number <= 0:
        raise ManifestError(
            f"model {name!r}: {what} is {number:g}, it must be > 0 (a fit on constant data made it 0); "
            "refit with the current `edge-agent fit sensor`, or set task.threshold"
        )
    return number


def _likelihood_threshold(config: SensorAnomalyTaskConfig, manifest: Manifest) -> float:
    value = config.likelihood_threshold or manifest.thresholds.get("likelihood") or DEFAULT_LIKELIHOOD
    if not 0.5 < float(value) < 1.0:
        raise _config_error("likelihood_threshold", f"{value} is not in (0.5, 1)", "use 0.99 or 0.999")
    return float(value)


def _decide_on(config: SensorAnomalyTaskConfig, calibration: Calibration | None, name: str) -> str:
    decide_on = config.decide_on or ("likelihood" if calibration is not None else "score")
    if decide_on == "likelihood" and calibration is None:
        raise ManifestError(
            f"model {name!r} has no likelihood calibration (params.calibration): refit it with the current "
            "`edge-agent fit sensor`, or set task.decide_on: score"
        )
    return decide_on


def _durations(
    config: SensorAnomalyTaskConfig, params: dict[str, Any], decide_on: str, span_s: float | None
) -> tuple[float | None, float | None]:
    """Debounce times: the config's, else its explicit window counts, else the manifest's, else the default.

    The default for the likelihood is one window's span abnormal before a start and two calm before an
    end: the window model needs a whole window of new data to see a change fully, whatever the sample
    rate. The raw score keeps its window counts (min_windows 5, clear_windows 10).
    """
    recorded = params.get("decision") if isinstance(params.get("decision"), dict) else {}
    assert isinstance(recorded, dict)
    counts = {"min_windows", "clear_windows"} & config.model_fields_set
    default = span_s if decide_on == "likelihood" and span_s else None
    values = []
    for key, count_key, factor in (("min_duration", "min_windows", 1.0), ("clear_duration", "clear_windows", 2.0)):
        value = getattr(config, key)
        if value is None and count_key not in counts:
            value = recorded.get(f"{key}_s", None if default is None else factor * default)
        if value is not None and (not isinstance(value, (int, float)) or value < 0):
            raise ManifestError(f"params.decision.{key}_s must be a number of seconds >= 0, got {value!r}")
        values.append(None if value is None else float(value))
    return values[0], values[1]


def _period(params: dict[str, Any]) -> float | None:
    sampling = params.get("sampling")
    if not isinstance(sampling, dict) or sampling.get("period_s") is None:
        return None
    period = float(sampling["period_s"])
    if not period > 0:
        raise ManifestError(f"params.sampling.period_s must be > 0, got {period}")
    return period


def _override(
    config: SensorAnomalyTaskConfig, params: dict[str, Any], field: str, key: str, valid: Callable[[float], bool]
) -> float | None:
    """The config's `field` when it sets it (null included), else the manifest's params.decision[key], checked
    with `valid`."""
    if field in config.model_fields_set:
        value = getattr(config, field)
        return None if value is None else float(value)
    recorded = params.get("decision") if isinstance(params.get("decision"), dict) else {}
    assert isinstance(recorded, dict)
    value = recorded.get(key)
    if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or not valid(value)):
        raise ManifestError(f"params.decision.{key} is {value!r}, out of range; refit or set task.{field}")
    return None if value is None else float(value)


def _fast_likelihood(config: SensorAnomalyTaskConfig, params: dict[str, Any]) -> float | None:
    """The config's fast likelihood when it sets one (null included), else the manifest's (in (0.5, 1))."""
    return _override(config, params, "fast_likelihood", "fast_likelihood", lambda v: 0.5 < v < 1)


def _adapt(config: SensorAnomalyTaskConfig, params: dict[str, Any]) -> float | None:
    """The config's adaptation time constant when it sets one (null = off), else the manifest's (seconds > 0)."""
    return _override(config, params, "adapt", "adapt_s", lambda v: v > 0)


def _fast(fast_likelihood: float | None, decide_on: str, likelihood_threshold: float) -> float | None:
    """The decision value (z) of the fast start, where the state follows the likelihood and it is set above
    the threshold."""
    if decide_on != "likelihood" or fast_likelihood is None or fast_likelihood <= likelihood_threshold:
        return None
    return float(isf(np.array(1.0 - fast_likelihood)))


def sensor_settings(config: SensorAnomalyTaskConfig, manifest: Manifest) -> SensorSettings:
    """Check a sensor task's config against its model's manifest; raise what `run` would refuse."""
    name = manifest.name
    if manifest.decoder != DECODER:
        raise ManifestError(f"model {name!r}: decoder {manifest.decoder!r} is not {DECODER!r}")
    params = parse_params(manifest.params)
    raw = manifest.params.get("calibration")
    calibration = parse_calibration(raw, len(params.channels)) if isinstance(raw, dict) else None
    score_threshold = _positive(config.threshold or manifest.thresholds.get("score"), "thresholds.score", name)
    likelihood_threshold = _likelihood_threshold(config, manifest)
    decide_on = _decide_on(config, calibration, name)
    threshold = float(isf(np.array(1.0 - likelihood_threshold))) if decide_on == "likelihood" else score_threshold
    period = _period(manifest.params)
    min_s, clear_s = _durations(config, manifest.params, decide_on, period * (params.size - 1) if period else None)
    decision = DecisionSettings(
        threshold, config.clear_ratio, config.min_windows, config.clear_windows, config.top_channels, min_s, clear_s,
        _fast(_fast_likelihood(config, manifest.params), decide_on, likelihood_threshold),
    )  # fmt: skip
    recent = parse_recent(manifest.params.get("recent"))
    if recent is not None and (calibration is None or calibration.recent_loc is None):
        raise ManifestError(
            f"model {name!r}: params.recent needs params.calibration.recent_loc/recent_spread; refit it"
        )
    spectral = parse_spectral(manifest.params.get("spectral"))
    if spectral is not None and (calibration is None or calibration.spectral_loc is None):
        raise ManifestError(
            f"model {name!r}: params.spectral needs params.calibration.spectral_loc/spectral_spread; refit it"
        )
    return SensorSettings(
        params, calibration, decide_on, score_threshold, likelihood_threshold, decision, period, recent,
        _adapt(config, manifest.params), spectral,
    )  # fmt: skip
