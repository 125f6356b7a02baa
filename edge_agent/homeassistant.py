"""Home Assistant MQTT discovery: retained configs so each device shows up without writing YAML.

Written against Home Assistant's MQTT integration documentation (sensor, binary_sensor, image,
button, event platforms; single-component discovery on `<prefix>/<component>/<node_id>/<object_id>/config`):

- `default_entity_id` ("<domain>.<slug>") names the entity; `object_id` was deprecated in 2025.10 and
  is no longer honoured from 2026.4.
- Every numeric sensor has `state_class: measurement` (so Home Assistant keeps long-term statistics),
  and a unit; durations have `device_class: duration`.
- Availability comes from the device's retained `status` message (`online` / `offline`).
- An `image` entity shows the newest defect or shelf snapshot (raw JPEG on `{task}/snapshot/+`),
  `button` entities send the `snapshot` and `reload` commands, and an `event` entity fires on each
  event the pipeline raises (anomaly_start / anomaly_end, defect, low_stock / out_of_stock / restocked).
"""

from __future__ import annotations

import json
import re
from typing import Any

from edge_agent import __version__
from edge_agent import messages as m
from edge_agent.config import AgentConfig, PipelineConfig
from edge_agent.tasks.dashboard import Entity, Place, from_metrics
from edge_agent.tasks.registry import task_class

_NOT_SLUG = re.compile(r"[^a-z0-9_]")


def discovery_messages(config: AgentConfig) -> list[tuple[str, bytes]]:
    """(topic, payload) pairs to publish retained on every connect; empty when switched off."""
    mqtt = config.mqtt
    if mqtt is None or not mqtt.home_assistant.enabled:
        return []
    site, dev = config.device.site, config.device.id
    node = _slug(f"edge_{site}_{dev}")
    base = _shared(site, dev, node)
    out: list[tuple[str, bytes]] = []
    for pipeline in config.pipelines:
        for component, object_id, entity in _entities(site, dev, pipeline):
            slug = _slug(f"{node}_{object_id}")
            payload = {**base, **entity, "unique_id": slug, "default_entity_id": f"{component}.{slug}"}
            topic = f"{mqtt.home_assistant.prefix}/{component}/{node}/{object_id}/config"
            out.append((topic, json.dumps(payload).encode()))
    return out


def _slug(text: str) -> str:
    """An entity id's object part: lower-case letters, digits and underscores only."""
    return _NOT_SLUG.sub("_", text.lower())


def _shared(site: str, dev: str, node: str) -> dict[str, Any]:
    """Keys every entity carries: availability from the retained status, the device and the origin."""
    return {
        "availability": [
            {
                "topic": m.topic(site, dev, "status"),
                "value_template": "{{ value_json.state }}",
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ],
        "device": {
            "identifiers": [node],
            "name": f"Edge {site}/{dev}",
            "manufacturer": "edge-agent",
            "model": "edge_agent",
            "sw_version": __version__,
        },
        "origin": {"name": "edge-agent", "sw_version": __version__},
        "qos": 1,
    }


def _entities(site: str, dev: str, p: PipelineConfig) -> list[Entity]:
    """Every pipeline's latency and buttons, then what its job's dashboard adds (its entities, events, snapshots)."""
    kind = p.task.kind
    board = task_class(kind).dashboard
    entities = [_latency(site, dev, p.name), *_buttons(site, dev, p.name)]
    entities.extend(board.entities(Place(site, dev, p.name), p.task))
    if board.events:
        entities.append(_event(site, dev, p.name, kind, board.events))
    if board.snapshots:
        entities.append(_image(site, dev, p.name, kind))
    return entities


def _latency(site: str, dev: str, name: str) -> Entity:
    return (
        "sensor",
        f"{name}_latency_p95",
        {
            "name": f"{name} latency p95",
            "state_topic": m.topic(site, dev, "metrics"),
            "device_class": "duration",
            "state_class": "measurement",
            "unit_of_measurement": "ms",
            "suggested_display_precision": 1,
            "value_template": from_metrics(name, "p.p95_ms | round(1)"),
        },
    )


def _buttons(site: str, dev: str, name: str) -> list[Entity]:
    press = json.dumps({"pipeline": name})
    return [
        (
            "button",
            f"{name}_snapshot",
            {"name": f"{name} snapshot", "command_topic": m.topic(site, dev, "cmd/snapshot"), "payload_press": press},
        ),
        (
            "button",
            f"{name}_reload",
            {
                "name": f"{name} reload model",
                "command_topic": m.topic(site, dev, "cmd/reload"),
                "payload_press": press,
                "entity_category": "config",
            },
        ),
    ]


def _event(site: str, dev: str, name: str, kind: str, types: tuple[str, ...]) -> Entity:
    """Fires on the pipeline's own events; another pipeline's event on the shared topic renders empty (ignored)."""
    fields = "{'event_type': value_json.event, 'subject': value_json.subject, 'severity': value_json.severity}"
    template = "{% if value_json.pipeline == '" + name + "' %}{{ " + fields + " | to_json }}{% endif %}"
    return (
        "event",
        f"{name}_events",
        {
            "name": f"{name} events",
            "state_topic": m.topic(site, dev, f"{kind}/event"),
            "event_types": list(types),
            "value_template": template,
        },
    )


def _image(site: str, dev: str, name: str, kind: str) -> Entity:
    """The newest JPEG the device published for this kind of task (events and the snapshot command)."""
    return (
        "image",
        f"{name}_snapshot_image",
        {
            "name": f"{name} last snapshot",
            "image_topic": m.topic(site, dev, f"{kind}/snapshot/+"),
            "content_type": "image/jpeg",
        },
    )
