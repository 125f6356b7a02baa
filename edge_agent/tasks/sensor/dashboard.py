"""The sensor job on dashboards: anomaly state, score and calibrated likelihood per pipeline."""

from __future__ import annotations

from typing import Any

from edge_agent.tasks.dashboard import Dashboard, Entity, Place, pick

# A window over its threshold: the calibrated likelihood against its own where the result carries one
# (the same meaning on every machine), else, for agents older than the likelihood, the raw score.
_HAS = "value_json.data.likelihood is defined and value_json.data.likelihood is not none"
_OVER = (
    f"value_json.data.likelihood >= value_json.data.likelihood_threshold if {_HAS} "
    "and value_json.data.likelihood_threshold is not none else value_json.data.score >= value_json.data.threshold"
)


class SensorDashboard(Dashboard):
    events = ("anomaly_start", "anomaly_end")

    def entities(self, place: Place, config: Any) -> list[Entity]:
        name, topic = place.pipeline, place.topic("sensor_anomaly/result")
        return [
            (
                "binary_sensor",
                f"{name}_anomaly",
                {
                    "name": f"{name} anomaly",
                    "state_topic": topic,
                    "device_class": "problem",
                    "value_template": pick(name, "'ON' if value_json.data.anomalous else 'OFF'"),
                },
            ),
            (
                "sensor",
                f"{name}_anomaly_score",
                {
                    "name": f"{name} anomaly score",
                    "state_topic": topic,
                    "state_class": "measurement",
                    "unit_of_measurement": "score",
                    "suggested_display_precision": 3,
                    "value_template": pick(name, "value_json.data.score | round(3)"),
                },
            ),
            *_likelihood(topic, name),
        ]

    def summary(self, data: dict[str, Any]) -> str:
        return f"score {data['score']:.3f} / {data['threshold']:.3f} {'ANOMALY' if data['anomalous'] else 'normal'}"


def _likelihood(topic: str, name: str) -> list[Entity]:
    """The calibrated likelihood, and whether the window is over its threshold (raw score for older agents)."""
    return [
        (
            "sensor",
            f"{name}_anomaly_likelihood",
            {
                "name": f"{name} anomaly likelihood",
                "state_topic": topic,
                "state_class": "measurement",
                "unit_of_measurement": "p",
                "suggested_display_precision": 4,
                "value_template": pick(name, f"value_json.data.likelihood | round(4) if {_HAS} else this.state"),
            },
        ),
        (
            "binary_sensor",
            f"{name}_anomaly_over_threshold",
            {
                "name": f"{name} window over threshold",
                "state_topic": topic,
                "device_class": "problem",
                "value_template": pick(name, f"'ON' if ({_OVER}) else 'OFF'"),
            },
        ),
    ]
