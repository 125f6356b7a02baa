"""roi_service: the cloud side that turns device MQTT output into KPIs, ROI, readiness and a roadmap."""

from __future__ import annotations

__version__ = "0.1.0"
