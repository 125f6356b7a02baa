"""promtool on the operator stack: the scrape config, its device targets and every PromQL query of the dashboard."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import yaml
from sqlalchemy.engine import Engine

from roi_service.db.schema import devices
from roi_service.registry.targets import write_targets

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "edge-agent.json"


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    assert found, "promtool is missing: run scripts/ensure_promtool.sh"
    return subprocess.run([found, *args], check=False, capture_output=True, text=True, timeout=60, cwd=cwd)


def in_place(tmp_path: Path, targets: Path = PROMETHEUS / "targets") -> Path:
    """The scrape config as the site compose mounts it: targets folder and the scrape token secret in place."""
    text = (PROMETHEUS / "prometheus.yml").read_text()
    assert "/etc/prometheus/targets/devices.yml" in text and "/run/secrets/metrics_token" in text
    (tmp_path / "metrics_token").write_text("token\n")
    text = text.replace("/etc/prometheus/targets/", f"{targets}/")
    text = text.replace("/run/secrets/metrics_token", str(tmp_path / "metrics_token"))
    (tmp_path / "prometheus.yml").write_text(text)
    return tmp_path / "prometheus.yml"


def test_scrape_config_passes_promtool_check_config(tmp_path: Path) -> None:
    done = promtool("check", "config", str(in_place(tmp_path)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_scrape_config_with_its_targets_file_in_place(tmp_path: Path) -> None:
    """As mounted in the site compose: the file_sd path resolves, so promtool reads the real targets file."""
    done = promtool("check", "config", str(in_place(tmp_path)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "does not exist" not in done.stdout + done.stderr


def test_targets_written_by_roi_service_pass_promtool(tmp_path: Path, engine: Engine) -> None:
    """Devices roi_service has heard from become file_sd targets that promtool reads as valid."""
    add_devices(engine, [("shop-1", "pi-01"), ("shop-1", "pi-02"), ("plant-2", "jetson-1")])
    targets = tmp_path / "targets"
    assert write_targets(engine, targets / "devices.yml") == 3
    done = promtool("check", "config", str(in_place(tmp_path, targets)))
    assert done.returncode == 0, done.stdout + done.stderr
    (targets / "devices.yml").write_text("- targets: [pi-01.local:9100]\n  labels: [not, a, map]\n")
    assert promtool("check", "config", str(in_place(tmp_path, targets))).returncode != 0


def add_devices(engine: Engine, pairs: list[tuple[str, str]]) -> None:
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(devices.insert(), [{"site": s, "device_id": d, "state": "online", "last_seen": now,
                                         "agent_version": "0.1.0", "pipelines": "[]"} for s, d in pairs])  # fmt: skip


def test_promtool_rejects_a_broken_scrape_config(tmp_path: Path) -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["scrape_configs"][0]["scrape_timeout"] = "60s"  # longer than the 15s interval
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    assert promtool("check", "config", str(tmp_path / "prometheus.yml")).returncode != 0


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """Each panel query becomes a recording rule; `promtool check rules` parses every expression."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    # Grafana replaces $site/$device before the query reaches Prometheus; ".*" is what "All" becomes.
    rules = [{"record": f"dashboard:query{i}", "expr": e.replace("$site", ".*").replace("$device", ".*")}
             for i, e in enumerate(exprs)]  # fmt: skip
    (tmp_path / "dashboard.rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = promtool("check", "rules", str(tmp_path / "dashboard.rules.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(exprs)} rules found" in done.stdout
