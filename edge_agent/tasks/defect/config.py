"""Config of the product defect detection task."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class DefectTaskConfig(BaseModel):
    """Judges each item pass/fail from an anomaly score and map."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["defect"] = Field(description="Task kind.")
    threshold: float | None = Field(None, gt=0, description="Score threshold; the manifest's when omitted.")
    roi: tuple[int, int, int, int] | None = Field(
        None, description="x, y, width, height crop in frame pixels; the manifest's (set by fit --roi) when omitted."
    )
    trigger: Literal["continuous", "mqtt", "gpio"] = Field("continuous", description="What starts an inspection.")
    trigger_timeout_s: float = Field(
        5.0, gt=0, description="A trigger that finds no frame within this time is dropped and counted as missed."
    )
    trigger_delay_s: float = Field(
        0.0, ge=0, description="Only frames captured this long after the trigger are judged (part settling)."
    )
    shifts: list[str] = Field(
        default_factory=lambda: ["06:00", "14:00", "22:00"],
        min_length=1,
        description="Shift start times HH:MM (local time); counts and defect rate are reported per shift.",
    )
    timezone: str | None = Field(None, description="IANA time zone of the shift times; the device's when omitted.")
    snapshot_max_bytes: int = Field(
        100_000, ge=8_000, le=5_000_000, description="Upper bound of a defect snapshot JPEG (quality/size reduced)."
    )
    snapshot_max_side: int = Field(640, ge=64, le=4096, description="Longest side of a snapshot in pixels.")
    heatmap_alpha: float = Field(0.55, ge=0, le=1, description="Opacity of the heat map at the highest score.")
    box_level: float = Field(
        0.5, gt=0, lt=1, description="The defect box spans map cells above this share of the peak cell."
    )

    @field_validator("shifts")
    @classmethod
    def _shift_times(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not _HHMM.match(v)]
        if bad:
            raise ValueError(f"shift start times must be HH:MM (24 h), got {bad}")
        if len(set(value)) != len(value):
            raise ValueError("shift start times must be unique")
        return sorted(value)
