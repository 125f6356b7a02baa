"""Home Assistant MQTT discovery: retained configs so each device shows up without writing YAML."""

from __future__ import annotations

import json
from typing import Any

from edge_agent import __version__
from edge_agent import messages as m
from edge_agent.config import AgentConfig, PipelineConfig
from edge_agent.tasks.shelf.config import ShelfTaskConfig


def discovery_messages(config: AgentConfig) -> list[tuple[str, bytes]]:
    """(topic, payload) pairs to publish retained on every connect; empty when switched off."""
    mqtt = config.mqtt
    if mqtt is None or not mqtt.home_assistant.enabled:
        return []
    site, dev = config.device.site, config.device.id
    node = f"edge_{site}_{dev}".replace("-", "_")
    base = {
        "availability_topic": m.topic(site, dev, "status"),
        "availability_template": "{{ value_json.state }}",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {
            "identifiers": [node],
            "name": f"Edge {site}/{dev}",
            "manufacturer": "edge-agent",
            "model": "edge_agent",
            "sw_version": __version__,
        },
    }
    out: list[tuple[str, bytes]] = []
    for pipeline in config.pipelines:
        for component, object_id, entity in _entities(site, dev, pipeline):
            payload = {**base, **entity, "unique_id": f"{node}_{object_id}", "object_id": f"{node}_{object_id}"}
            topic = f"{mqtt.home_assistant.prefix}/{component}/{node}/{object_id}/config"
            out.append((topic, json.dumps(payload).encode()))
    return out


def _pick(pipeline: str, expr: str) -> str:
    """A template reading one pipeline's value from a message that several pipelines share."""
    return (
        f"{{% if value_json.pipeline == '{pipeline}' %}}{{{{ {expr} }}}}{{% else %}}{{{{ this.state }}}}{{% endif %}}"
    )


def _entities(site: str, dev: str, p: PipelineConfig) -> list[tuple[str, str, dict[str, Any]]]:
    name = p.name
    kind = p.task.kind
    result_topic = m.topic(site, dev, f"{kind}/result")
    latency = (
        "sensor",
        f"{name}_latency_p95",
        {
            "name": f"{name} latency p95",
            "state_topic": m.topic(site, dev, "metrics"),
            "unit_of_measurement": "ms",
            "value_template": "{% for p in value_json.pipelines if p.pipeline == '" + name + "' %}"
            "{{ p.p95_ms | round(1) }}{% endfor %}",
        },
    )
    entities: list[tuple[str, str, dict[str, Any]]] = [latency]
    if kind == "sensor_anomaly":
        entities.append(
            (
                "binary_sensor",
                f"{name}_anomaly",
                {
                    "name": f"{name} anomaly",
                    "state_topic": result_topic,
                    "device_class": "problem",
                    "value_template": _pick(name, "'ON' if value_json.data.anomalous else 'OFF'"),
                },
            )
        )
        entities.append(
            (
                "sensor",
                f"{name}_anomaly_score",
                {
                    "name": f"{name} anomaly score",
                    "state_topic": result_topic,
                    "value_template": _pick(name, "value_json.data.score | round(3)"),
                },
            )
        )
    elif kind == "defect":
        entities.append(
            (
                "sensor",
                f"{name}_defect_rate",
                {
                    "name": f"{name} defect rate",
                    "state_topic": m.topic(site, dev, "metrics"),
                    "unit_of_measurement": "%",
                    "value_template": "{% for p in value_json.pipelines if p.pipeline == '" + name + "' %}"
                    "{{ (p.figures.defect_rate * 100) | round(2) }}{% endfor %}",
                },
            )
        )
        entities.append(
            (
                "binary_sensor",
                f"{name}_last_item_failed",
                {
                    "name": f"{name} last item failed",
                    "state_topic": result_topic,
                    "device_class": "problem",
                    "value_template": _pick(name, "'OFF' if value_json.data.passed else 'ON'"),
                },
            )
        )
    elif isinstance(p.task, ShelfTaskConfig):
        for zone in p.task.zones:
            expr = "(value_json.data.zones | selectattr('zone','eq','" + zone.name + "') | first).count"
            entities.append(
                (
                    "sensor",
                    f"{name}_{zone.name}_count",
                    {
                        "name": f"{name} {zone.name} facings",
                        "state_topic": result_topic,
                        "state_class": "measurement",
                        "value_template": _pick(name, expr),
                    },
                )
            )
    return entities
