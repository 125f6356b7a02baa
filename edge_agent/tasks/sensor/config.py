"""Config of the machine-sensor anomaly task."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SensorAnomalyTaskConfig(BaseModel):
    """Scores sliding windows of sensor samples and raises debounced anomaly events."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["sensor_anomaly"] = Field(description="Task kind.")
    threshold: float | None = Field(None, gt=0, description="Anomaly score threshold; the manifest's when omitted.")
    clear_ratio: float = Field(0.8, gt=0, le=1, description="Hysteresis: clears below threshold x clear_ratio.")
    min_windows: int = Field(
        5, ge=1, description="Consecutive abnormal windows before anomaly_start (5: chosen on SKAB)."
    )
    clear_windows: int = Field(
        10, ge=1, description="Consecutive windows below the clear level before anomaly_end (10: chosen on SKAB)."
    )
    batch_size: int = Field(64, ge=1, le=4096, description="Windows scored per inference when they queue up.")
    top_channels: int = Field(3, ge=1, description="Channels reported as contributing most.")
    subject: str | None = Field(None, description="Machine named in events; the pipeline name when omitted.")
