"""The defect job on dashboards: the defect rate and whether the last item failed, per pipeline."""

from __future__ import annotations

from typing import Any

from edge_agent.tasks.dashboard import Dashboard, Entity, Place, from_metrics, pick


class DefectDashboard(Dashboard):
    events = ("defect",)
    snapshots = True

    def entities(self, place: Place, config: Any) -> list[Entity]:
        name = place.pipeline
        return [
            (
                "sensor",
                f"{name}_defect_rate",
                {
                    "name": f"{name} defect rate",
                    "state_topic": place.topic("metrics"),
                    "state_class": "measurement",
                    "unit_of_measurement": "%",
                    "suggested_display_precision": 2,
                    "value_template": from_metrics(name, "(p.figures.defect_rate * 100) | round(2)"),
                },
            ),
            (
                "binary_sensor",
                f"{name}_last_item_failed",
                {
                    "name": f"{name} last item failed",
                    "state_topic": place.topic("defect/result"),
                    "device_class": "problem",
                    "value_template": pick(name, "'OFF' if value_json.data.passed else 'ON'"),
                },
            ),
        ]

    def summary(self, data: dict[str, Any]) -> str:
        return f"item {data['item_id']} {'PASS' if data['passed'] else 'FAIL'} score {data['score']:.3f}"
