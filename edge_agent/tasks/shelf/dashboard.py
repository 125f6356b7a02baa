"""The shelf job on dashboards: facings per zone."""

from __future__ import annotations

from typing import Any

from edge_agent.tasks.dashboard import Dashboard, Entity, Place, pick
from edge_agent.tasks.shelf.config import ShelfTaskConfig


class ShelfDashboard(Dashboard):
    events = ("low_stock", "out_of_stock", "restocked")
    snapshots = True

    def entities(self, place: Place, config: Any) -> list[Entity]:
        assert isinstance(config, ShelfTaskConfig)
        name, topic = place.pipeline, place.topic("shelf/result")
        out: list[Entity] = []
        for zone in (z.name for z in config.zones):
            expr = "(value_json.data.zones | selectattr('zone','eq','" + zone + "') | first).count"
            out.append(
                (
                    "sensor",
                    f"{name}_{zone}_count",
                    {
                        "name": f"{name} {zone} facings",
                        "state_topic": topic,
                        "state_class": "measurement",
                        "unit_of_measurement": "facings",
                        "value_template": pick(name, expr),
                    },
                )
            )
        return out

    def summary(self, data: dict[str, Any]) -> str:
        return ", ".join(
            f"{z['zone']}={z['count']}{'' if z['state'] == 'ok' else ' (' + z['state'] + ')'}" for z in data["zones"]
        )
