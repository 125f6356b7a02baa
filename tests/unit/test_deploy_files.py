"""Deploy files against their schemas: compose files, balena.yml, Grafana dashboard, Prometheus targets, profiles."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from prometheus_client import CollectorRegistry

from edge_agent.check import check_config
from edge_agent.config_loader import load_config
from edge_agent.metrics import AgentMetrics
from roi_service.metrics import ServiceMetrics
from tests.support.fleet import make_pki

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "tests" / "schemas"
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "edge-agent.json"
COMPOSE_FILES = [DEPLOY / "docker-compose.site.yml", DEPLOY / "balena" / "docker-compose.yml",
                 DEPLOY / "jetson" / "docker-compose.yml"]  # fmt: skip
PROFILES = sorted((DEPLOY / "profiles").glob("*.yaml"))


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    return loaded


def errors(instance: Any, name: str) -> list[str]:
    spec = schema(name)
    # compose-spec.json names its draft as ".../draft/2019-09/schema#", a spelling jsonschema does not map.
    validator_cls = jsonschema.validators.validator_for(spec, default=jsonschema.Draft201909Validator)
    validator_cls.check_schema(spec)
    found = validator_cls(spec).iter_errors(instance)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


# ---------------------------------------------------------------- compose files


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_compose_files_follow_the_compose_spec(path: Path) -> None:
    assert errors(load_yaml(path), "compose-spec.json") == []


def test_compose_spec_schema_rejects_a_broken_compose_file() -> None:
    broken = copy.deepcopy(load_yaml(DEPLOY / "docker-compose.site.yml"))
    broken["services"]["broker"]["restart_policy"] = "always"  # not a compose key
    broken["services"]["grafana"]["ports"] = "3000:3000"  # must be a list
    assert len(errors(broken, "compose-spec.json")) >= 2


def test_balena_compose_keeps_to_what_balena_supports() -> None:
    compose = load_yaml(DEPLOY / "balena" / "docker-compose.yml")
    assert errors(compose, "balena-compose.subset.json") == []
    agent = compose["services"]["agent"]
    assert agent["labels"]["io.balena.update.strategy"] == "download-then-kill"
    # One named volume for config, outbox, TLS files and delivered models: nothing left orphaned on update.
    assert agent["volumes"] == ["edge-data:/data"] and list(compose["volumes"]) == ["edge-data"]
    # No hard-coded camera node: the host's /dev, the camera chosen by the pipeline's source.device.
    assert "devices" not in agent and agent["privileged"] is True
    assert "EDGE_AGENT__HTTP__HOST" not in agent["environment"]


def test_jetson_compose_runs_with_the_nvidia_runtime_and_one_data_volume() -> None:
    compose = load_yaml(DEPLOY / "jetson" / "docker-compose.yml")
    agent = compose["services"]["agent"]
    assert agent["runtime"] == "nvidia" and agent["build"]["dockerfile"] == "Dockerfile.jetson"
    assert "edge-data:/data" in agent["volumes"] and list(compose["volumes"]) == ["edge-data"]
    assert agent["environment"]["EDGE_AGENT__HTTP__HOST"] == "${EDGE_AGENT__HTTP__HOST:-127.0.0.1}"


def test_balena_compose_schema_rejects_bind_mounts_and_secrets() -> None:
    compose = copy.deepcopy(load_yaml(DEPLOY / "balena" / "docker-compose.yml"))
    compose["services"]["agent"]["volumes"].append("/etc/edge:/config")
    compose["secrets"] = {"x": {"file": "x"}}
    assert len(errors(compose, "balena-compose.subset.json")) >= 2


def test_site_compose_takes_every_secret_from_the_site_folder() -> None:
    compose = load_yaml(DEPLOY / "docker-compose.site.yml")
    assert {"broker", "roi-service", "grafana", "prometheus"} <= set(compose["services"])
    for name, secret in compose["secrets"].items():
        assert secret["file"].startswith("${SITE_DIR:-./site}/"), name
    for service in compose["services"].values():
        image = service.get("image", "")
        assert not image.endswith(":latest") and (":" in image or "build" in service), image


# ---------------------------------------------------------------- balena.yml and the variables it sets


def balena_variables() -> dict[str, str]:
    data = load_yaml(DEPLOY / "balena" / "balena.yml")["data"]
    return {k: v for item in data["applicationEnvironmentVariables"] for k, v in item.items()}


def test_balena_yml_follows_the_balena_project_schema() -> None:
    assert errors(load_yaml(DEPLOY / "balena" / "balena.yml"), "balena-yml.subset.json") == []


def test_balena_yml_schema_rejects_a_typo() -> None:
    doc = load_yaml(DEPLOY / "balena" / "balena.yml")
    doc["data"]["supportedDeviceType"] = doc["data"].pop("supportedDeviceTypes")
    assert errors(doc, "balena-yml.subset.json")


@pytest.mark.parametrize("profile", [p for p in PROFILES if "jetson" not in p.name], ids=lambda p: p.stem)
def test_balena_fleet_variables_make_a_valid_config_with_each_pi_profile(profile: Path) -> None:
    env = {k: v for k, v in balena_variables().items() if k.startswith("EDGE_AGENT__")}
    env["EDGE_AGENT__DEVICE__ID"] = "pi-01"  # the entrypoint derives it from the balena device name
    config = load_config(profile, env)
    assert config.device.site == "set-me" and config.mqtt is not None and config.mqtt.port == 8883
    assert balena_variables()["EDGE_AGENT_PROFILE"] in {p.stem for p in PROFILES}


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_profiles_are_valid_configs_once_the_device_variables_are_set(profile: Path) -> None:
    env = {"EDGE_AGENT__DEVICE__SITE": "shop-1", "EDGE_AGENT__DEVICE__ID": "pi-01", "EDGE_AGENT__MQTT__HOST": "broker"}
    config = load_config(profile, env)
    assert config.http.host == "127.0.0.1" and config.http.token_file is None
    assert str(config.outbox.path).startswith("/data/")
    assert config.mqtt is not None and config.mqtt.tls is not None


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_profiles_match_the_models_the_image_ships(profile: Path, tmp_path: Path, accept_cpu: dict[str, str]) -> None:
    """`edge-agent check` on each profile, /opt/edge-agent/models/<name> mapped to models/<name> as the image has it."""
    shipped = Path(yaml.safe_load(profile.read_text())["pipelines"][0]["model"]["path"])
    local = ROOT / "models" / shipped.name
    if not (local / "manifest.yaml").is_file():
        pytest.skip(f"models/{shipped.name} is not in the repository yet, so the image would not ship it either")
    ca, _ = make_pki(tmp_path / "pki")  # check reads the CA as PEM
    env = {"EDGE_AGENT__DEVICE__SITE": "shop-1", "EDGE_AGENT__DEVICE__ID": "pi-01", "EDGE_AGENT__MQTT__HOST": "broker",
           "EDGE_AGENT__MQTT__TLS__CA_FILE": str(ca), "EDGE_AGENT__PIPELINES__0__MODEL__PATH": str(local),
           **(accept_cpu if "jetson" in profile.name else {})}  # fmt: skip
    config = check_config(profile, env)
    assert config.pipelines[0].model.path == local


@pytest.fixture
def accept_cpu() -> dict[str, str]:
    """This machine has no GPU: the Jetson profile is checked with an explicit CPU fallback."""
    return {"EDGE_AGENT__PIPELINES__0__MODEL__RUNTIME__FALLBACK": "cpu"}


def test_check_refuses_the_jetson_profile_on_a_machine_without_tensorrt(tmp_path: Path) -> None:
    """`check` refuses what `run` would: a TensorRT profile never falls back to the CPU silently."""
    from edge_agent.errors import ConfigError
    from edge_agent.runtime.onnx import available_providers

    if "TensorrtExecutionProvider" in available_providers():
        pytest.skip("this machine has TensorRT")
    ca, _ = make_pki(tmp_path / "pki")
    env = {"EDGE_AGENT__DEVICE__SITE": "s", "EDGE_AGENT__DEVICE__ID": "j1", "EDGE_AGENT__MQTT__HOST": "broker",
           "EDGE_AGENT__MQTT__TLS__CA_FILE": str(ca),
           "EDGE_AGENT__PIPELINES__0__MODEL__PATH": str(ROOT / "models" / "defect-synthetic")}  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        check_config(DEPLOY / "profiles" / "defect-csi-jetson.yaml", env)
    text = str(caught.value)
    assert "pipelines.0.model.runtime.providers" in text and "TensorrtExecutionProvider" in text
    assert "fallback: cpu" in text


# ---------------------------------------------------------------- Prometheus targets


def test_prometheus_device_targets_file_has_the_file_sd_shape() -> None:
    groups = load_yaml(DEPLOY / "prometheus" / "targets" / "devices.yml")
    file_sd = {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["targets"],
            "additionalProperties": False,
            "properties": {
                "targets": {"type": "array", "items": {"type": "string", "pattern": "^[^/:]+:[0-9]+$"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
    }
    jsonschema.validate(groups, file_sd)
    assert all({"site", "device"} <= set(g["labels"]) for g in groups)


# ---------------------------------------------------------------- Grafana dashboard


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def exposed_names() -> set[str]:
    """Every series name the agent and roi_service can expose, from their real metric declarations."""
    names: set[str] = set()
    for registry in (AgentMetrics(CollectorRegistry()).registry, ServiceMetrics(CollectorRegistry()).registry):
        for family in registry.collect():
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "info": ["_info"]}
            names.update(family.name + s for s in suffixes.get(family.type, [""]))
    return names


def test_dashboard_follows_grafana_schemas() -> None:
    assert errors(dashboard(), "grafana-dashboard.subset.json") == []
    # SchemaStore's 5.x schema types a variable's `refresh` as boolean and its datasource as a string, where
    # Grafana writes 0/1/2 and, since schemaVersion 33, {type, uid}: variables are checked by the subset only.
    legacy = dashboard()
    legacy["templating"]["list"] = []
    assert errors({"dashboard": legacy, "overwrite": True}, "grafana-dashboard-5.x.json") == []


def test_dashboard_subset_schema_rejects_a_broken_panel() -> None:
    broken = dashboard()
    broken["panels"][0]["gridPos"]["w"] = 30
    broken["panels"][1]["targets"][0].pop("expr")
    assert len(errors(broken, "grafana-dashboard.subset.json")) >= 2


def test_dashboard_queries_only_metrics_that_exist() -> None:
    exprs = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    used = {m for e in exprs for m in re.findall(r"\b((?:edge|roi)_[a-z0-9_]+)\b", e)}
    assert used, "no metric found in the dashboard's queries"
    assert sorted(used - exposed_names()) == []


def test_dashboard_has_the_panels_operators_asked_for() -> None:
    panels = dashboard()["panels"]
    text = " ".join(t["expr"] for p in panels for t in p.get("targets", []))
    for metric in ("edge_stage_seconds_bucket", "edge_items_total", "edge_outbox_backlog", "edge_shelf_zone_count",
                   "edge_defect_rate", "edge_anomaly_state"):  # fmt: skip
        assert metric in text, metric
    latency = next(p for p in panels if "p95" in p["title"])
    assert "histogram_quantile(0.95" in latency["targets"][0]["expr"]
    steps = latency["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert {"color": "red", "value": 100} in steps and latency["fieldConfig"]["defaults"]["unit"] == "ms"


def test_dashboard_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_grafana_provisioning_points_at_the_dashboard_and_prometheus() -> None:
    ds = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")["datasources"][0]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "edge-agent.yml")["providers"][0]
    mounts = load_yaml(DEPLOY / "docker-compose.site.yml")["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
