"""Home Assistant discovery for the demo's three jobs: every payload valid against a schema written from
Home Assistant's MQTT docs, and every template rendering what Home Assistant would show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
import jsonschema
import pytest

from edge_agent import messages as m
from edge_agent.config_loader import load_config
from edge_agent.homeassistant import discovery_messages

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tests" / "schemas" / "ha-mqtt-discovery.subset.json").read_text())
STATUS = "edge/v1/demo-site/demo-device/status"


@pytest.fixture(scope="module")
def entities() -> dict[str, tuple[str, dict[str, Any]]]:
    """object id -> (component, config), for examples/demo.yaml with a broker named from the environment."""
    config = load_config(ROOT / "examples" / "demo.yaml", environ={"EDGE_AGENT__MQTT__HOST": "broker"})
    out = {}
    for topic, payload in discovery_messages(config):
        prefix, component, node, object_id, leaf = topic.split("/")
        assert (prefix, node, leaf) == ("homeassistant", "edge_demo_site_demo_device", "config")
        out[object_id] = (component, json.loads(payload))
    return out


def render(template: str, body: dict[str, Any], state: str = "unknown") -> str:
    """Render as Home Assistant does for MQTT values: value_json, `this.state`, the to_json filter."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    return env.from_string(template).render(value_json=body, this={"state": state}).strip()


def test_every_payload_matches_the_documented_schema(entities: dict[str, tuple[str, dict[str, Any]]]) -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for object_id, (component, config) in entities.items():
        errors = [e.message for e in validator.iter_errors({"x-component": component, "config": config})]
        assert not errors, f"{component} {object_id}: {errors}"
        assert config["default_entity_id"] == f"{component}.{config['unique_id']}"
        assert config["availability"][0]["topic"] == STATUS
    assert len({c["unique_id"] for _, c in entities.values()}) == len(entities)


def test_the_schema_rejects_what_home_assistant_drops(entities: dict[str, tuple[str, dict[str, Any]]]) -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    component, config = entities["line1_latency_p95"]
    legacy = {**config, "object_id": config["unique_id"]}
    no_statistics = {k: v for k, v in config.items() if k != "state_class"}
    seconds_as_ms = {**config, "unit_of_measurement": "msec"}
    for bad in (legacy, no_statistics, seconds_as_ms):
        assert not validator.is_valid({"x-component": component, "config": bad})


def test_each_job_has_its_entities(entities: dict[str, tuple[str, dict[str, Any]]]) -> None:
    by_component: dict[str, set[str]] = {}
    for object_id, (component, _) in entities.items():
        by_component.setdefault(component, set()).add(object_id)
    for pipeline in ("pump", "line1", "aisle3"):
        assert {f"{pipeline}_snapshot", f"{pipeline}_reload"} <= by_component["button"]
        assert f"{pipeline}_latency_p95" in by_component["sensor"]
        assert f"{pipeline}_events" in by_component["event"]
    assert by_component["image"] == {"line1_snapshot_image", "aisle3_snapshot_image"}
    assert {"pump_anomaly", "pump_anomaly_over_threshold", "line1_last_item_failed"} <= by_component["binary_sensor"]
    assert {"pump_anomaly_score", "pump_anomaly_likelihood", "line1_defect_rate"} <= by_component["sensor"]
    assert "aisle3_r1-s1_count" in by_component["sensor"]
    assert entities["line1_snapshot_image"][1]["image_topic"] == "edge/v1/demo-site/demo-device/defect/snapshot/+"


def test_templates_render_the_values_home_assistant_shows(entities: dict[str, tuple[str, dict[str, Any]]]) -> None:
    metrics = {"pipelines": [{"pipeline": "line1", "p95_ms": 12.345, "figures": {"defect_rate": 0.0312}}]}
    assert render(entities["line1_latency_p95"][1]["value_template"], metrics) == "12.3"
    assert render(entities["line1_defect_rate"][1]["value_template"], metrics) == "3.12"
    result = {"pipeline": "pump", "data": {"anomalous": True, "score": 1.23456}}
    assert render(entities["pump_anomaly"][1]["value_template"], result) == "ON"
    assert render(entities["pump_anomaly_score"][1]["value_template"], result) == "1.235"
    other = {"pipeline": "pump2", "data": {"anomalous": False, "score": 0.1}}
    assert render(entities["pump_anomaly"][1]["value_template"], other, state="ON") == "ON", "another pipeline's"
    shelf = {"pipeline": "aisle3", "data": {"zones": [{"zone": "r1-s1", "count": 4}, {"zone": "r2-s1", "count": 1}]}}
    assert render(entities["aisle3_r1-s1_count"][1]["value_template"], shelf) == "4"


def test_sensor_alerts_follow_the_likelihood_and_fall_back_to_the_raw_score(
    entities: dict[str, tuple[str, dict[str, Any]]],
) -> None:
    over = entities["pump_anomaly_over_threshold"][1]["value_template"]
    likelihood = entities["pump_anomaly_likelihood"][1]["value_template"]
    calibrated = {"score": 5.0, "threshold": 1.5, "likelihood": 0.99, "likelihood_threshold": 0.999}
    result = {"pipeline": "pump", "data": {"anomalous": False, **calibrated}}
    assert render(over, result) == "OFF", "a raw score over its threshold does not alarm when the likelihood is calm"
    assert render(likelihood, result) == "0.99"
    result["data"]["likelihood"] = 0.9995
    assert render(over, result) == "ON"
    old = {"pipeline": "pump", "data": {"anomalous": False, "score": 2.0, "threshold": 1.5}}
    assert render(over, old) == "ON", "an agent without the likelihood: the raw score against its threshold"
    assert render(over, {**old, "data": {**old["data"], "score": 1.0}}) == "OFF"
    assert render(likelihood, {**old, "data": {**old["data"], "likelihood": None}}, state="0.5") == "0.5"


def test_event_entities_fire_with_a_documented_event_type(entities: dict[str, tuple[str, dict[str, Any]]]) -> None:
    config = entities["aisle3_events"][1]
    event = {"pipeline": "aisle3", "event": "out_of_stock", "subject": 'zone "A1"', "severity": "critical"}
    fired = json.loads(render(config["value_template"], event))
    assert fired["event_type"] in config["event_types"] and fired["subject"] == 'zone "A1"'
    assert render(config["value_template"], {**event, "pipeline": "aisle4"}) == "", "others' events are ignored"
    assert entities["pump_events"][1]["event_types"] == ["anomaly_start", "anomaly_end"]


def test_buttons_send_commands_the_agent_accepts(entities: dict[str, tuple[str, dict[str, Any]]]) -> None:
    for name in ("line1_snapshot", "line1_reload"):
        config = entities[name][1]
        command = m.CommandMessage.model_validate_json(config["payload_press"])
        assert command.pipeline == "line1"
        assert config["command_topic"].startswith("edge/v1/demo-site/demo-device/cmd/")
