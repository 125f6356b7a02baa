"""Config of the shelf inventory counting task: zones, detection thresholds, smoothing and event debounce."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ZoneConfig(BaseModel):
    """A shelf zone: a product slot or a row, as a polygon in frame pixels or in fractions of the frame."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Zone id used in topics and dashboards.")
    polygon: list[tuple[float, float]] = Field(min_length=3, description="Polygon vertices [[x, y], ...].")
    capacity: int | None = Field(None, ge=1, description="Facings when the zone is full.")
    low_stock: int = Field(2, ge=0, description="low_stock event at or below this many facings.")
    rows: int = Field(
        1, ge=1, le=32, description="Shelf rows inside the zone: facings are also counted per horizontal band."
    )
    min_box_width: float | None = Field(
        None,
        gt=0,
        description="Boxes narrower than this are not counted here (same units as the polygon: pixels of "
        "frame_size, or a fraction of the frame width with coordinates: normalized).",
    )
    max_box_width: float | None = Field(
        None,
        gt=0,
        description="Boxes wider than this are not counted here, so a box spanning three facings is not one "
        "facing (same units as the polygon).",
    )

    @model_validator(mode="after")
    def _low_below_capacity(self) -> ZoneConfig:
        if self.capacity is not None and self.low_stock >= self.capacity:
            raise ValueError(f"zone {self.name}: low_stock ({self.low_stock}) must be below capacity ({self.capacity})")
        return self

    @model_validator(mode="after")
    def _box_widths_ordered(self) -> ZoneConfig:
        low, high = self.min_box_width, self.max_box_width
        if low is not None and high is not None and low >= high:
            raise ValueError(f"zone {self.name}: min_box_width ({low}) must be below max_box_width ({high})")
        return self


class ShelfTaskConfig(BaseModel):
    """Counts products per zone and raises stock events."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["shelf"] = Field(description="Task kind.")
    zones: list[ZoneConfig] = Field(min_length=1, description="Zones to count.")
    coordinates: Literal["pixels", "normalized"] = Field(
        "pixels",
        description="pixels: polygons in pixels of frame_size (or of the frames, without frame_size). normalized: "
        "polygons as fractions 0..1 of the frame width and height, valid at any resolution.",
    )
    frame_size: tuple[int, int] | None = Field(
        None,
        description="Width and height of the snapshot pixel zones were drawn on. Frames of another size get the "
        "zones scaled to them (per axis: a camera at another aspect ratio is assumed to show the same view).",
    )
    count_labels: list[str] | None = Field(
        None,
        min_length=1,
        description="Count only detections of these labels of the model (e.g. [bottle] with a COCO detector); "
        "every detection counts when unset.",
    )
    score_threshold: float | None = Field(
        None, gt=0, lt=1, description="Detection score threshold; manifest's if unset."
    )
    iou_threshold: float | None = Field(None, gt=0, lt=1, description="NMS IoU threshold; manifest's if unset.")
    nested_threshold: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Drop a box when more than this share of it lies inside a better-scoring box (one package "
        "seen as a whole and as a part); manifest's if unset (the shipped shelf model: 0.5); 1 turns the rule off.",
    )
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
    def _zones_inside_the_frame(self) -> ShelfTaskConfig:
        if self.coordinates == "normalized":
            bounds, what = (1.0, 1.0), "the 0..1 range of coordinates: normalized"
        elif self.frame_size is not None:
            bounds = (float(self.frame_size[0]), float(self.frame_size[1]))
            what = f"frame_size {self.frame_size[0]}x{self.frame_size[1]}"
        else:
            return self
        for index, zone in enumerate(self.zones):
            for x, y in zone.polygon:
                if not (0 <= x <= bounds[0] and 0 <= y <= bounds[1]):
                    raise ValueError(
                        f"zones.{index}.polygon: vertex ({x:g}, {y:g}) of zone {zone.name} lies outside {what}; "
                        "redraw the zone with `edge-agent zones` or fix frame_size"
                    )
        return self

    @model_validator(mode="after")
    def _unique_zone_names(self) -> ShelfTaskConfig:
        names = [zone.name for zone in self.zones]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"zone names must be unique; repeated: {', '.join(duplicates)}")
        return self
