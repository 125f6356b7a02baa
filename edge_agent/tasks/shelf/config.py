"""Config of the shelf inventory counting task: zones, detection thresholds, smoothing and event debounce."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ZoneConfig(BaseModel):
    """A shelf zone: a product slot or a row, as a polygon in frame pixels."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Zone id used in topics and dashboards.")
    polygon: list[tuple[float, float]] = Field(min_length=3, description="Polygon vertices [[x, y], ...].")
    capacity: int | None = Field(None, ge=1, description="Facings when the zone is full.")
    low_stock: int = Field(2, ge=0, description="low_stock event at or below this many facings.")
    rows: int = Field(
        1, ge=1, le=32, description="Shelf rows inside the zone: facings are also counted per horizontal band."
    )

    @model_validator(mode="after")
    def _low_below_capacity(self) -> ZoneConfig:
        if self.capacity is not None and self.low_stock >= self.capacity:
            raise ValueError(f"zone {self.name}: low_stock ({self.low_stock}) must be below capacity ({self.capacity})")
        return self


class ShelfTaskConfig(BaseModel):
    """Counts products per zone and raises stock events."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["shelf"] = Field(description="Task kind.")
    zones: list[ZoneConfig] = Field(min_length=1, description="Zones to count.")
    frame_size: tuple[int, int] | None = Field(
        None,
        description="Width and height of the snapshot the zones were drawn on. A camera delivering another size "
        "with the same aspect ratio gets the zones scaled; another aspect ratio is refused with a clear error.",
    )
    score_threshold: float | None = Field(
        None, gt=0, lt=1, description="Detection score threshold; manifest's if unset."
    )
    iou_threshold: float | None = Field(None, gt=0, lt=1, description="NMS IoU threshold; manifest's if unset.")
    smoothing: Literal["median", "hysteresis"] = Field(
        "median",
        description="median: the count is the median of the last smoothing_frames raw counts. hysteresis: the count "
        "changes only once smoothing_frames raw counts in a row all lie on the same side of it.",
    )
    smoothing_frames: int = Field(5, ge=1, le=120, description="Frames the smoothing looks at.")
    debounce_frames: int = Field(3, ge=1, le=120, description="Frames a new stock state must hold before its event.")
    event_cooldown_s: float = Field(0.0, ge=0, description="Minimum seconds between two events of one zone.")
    min_frame_contrast: float = Field(
        3.0,
        ge=0,
        description="Frames whose grey-level standard deviation is below this (lens covered, lights off, black "
        "frame) are not counted: no result, no event.",
    )

    @model_validator(mode="after")
    def _unique_zone_names(self) -> ShelfTaskConfig:
        names = [zone.name for zone in self.zones]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"zone names must be unique; repeated: {', '.join(duplicates)}")
        return self
