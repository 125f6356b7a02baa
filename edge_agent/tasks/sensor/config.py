"""Config of the machine-sensor anomaly task."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edge_agent.tasks.sensor.durations import Seconds


class SensorAnomalyTaskConfig(BaseModel):
    """Scores sliding windows of sensor samples and raises debounced anomaly events.

    Durations may be written with units (`90s`, `2m`, `10m`, `6h`, `1d`) or as seconds.
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["sensor_anomaly"] = Field(description="Task kind.")
    decide_on: Literal["likelihood", "score"] | None = Field(
        None,
        description="What the anomaly state follows: the calibrated likelihood (the default when the model has a "
        "calibration) or the raw reconstruction score.",
    )
    threshold: float | None = Field(None, gt=0, description="Raw score threshold; the manifest's when omitted.")
    likelihood_threshold: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Likelihood threshold (0.999: ~0.1% of normal windows); the manifest's by default.",
    )
    clear_ratio: float = Field(
        0.8, gt=0, le=1, description="Hysteresis: clears below threshold x clear_ratio (z-units for the likelihood)."
    )
    min_windows: int = Field(
        5, ge=1, description="Consecutive abnormal windows before anomaly_start (5: chosen on SKAB)."
    )
    clear_windows: int = Field(
        10, ge=1, description="Consecutive windows below the clear level before anomaly_end (10: chosen on SKAB)."
    )
    min_duration: Seconds | None = Field(
        None,
        ge=0,
        description="Time abnormal before anomaly_start (e.g. 2m); replaces min_windows. Manifest's default.",
    )
    clear_duration: Seconds | None = Field(
        None, ge=0, description="Time calm before anomaly_end (e.g. 10m); replaces clear_windows. Manifest's default."
    )
    fast_likelihood: float | None = Field(
        None,
        gt=0.5,
        lt=1,
        description="Likelihood at which an anomaly starts after two windows instead of min_duration (a window this "
        "far out is not noise: waiting only delays the alarm), e.g. 0.999999; null to always wait. Default: the "
        "manifest's (fit sets 0.999999 for one-channel models). Ignored unless above likelihood_threshold.",
    )
    max_gap: float | None = Field(
        None,
        gt=1,
        description="A step longer than this many sample periods is a gap: windows across it are skipped (the state "
        "holds). Default: a quarter of the window, at least 3.",
    )
    adapt: Seconds | None = Field(
        None,
        gt=0,
        description="Time constant of the online update of the normal levels (scaler means, error levels) on windows "
        "judged normal, e.g. 1d; frozen while an anomaly is pending or open; null for off. Default: the "
        "manifest's (fit sets 3d for one-channel models, none for several).",
    )
    batch_size: int = Field(64, ge=1, le=4096, description="Windows scored per inference when they queue up.")
    top_channels: int = Field(3, ge=1, description="Channels reported as contributing most.")
    subject: str | None = Field(None, description="Machine named in events; the pipeline name when omitted.")
