"""promtool on the operator stack: the scrape config, its device targets and every PromQL query of the dashboard."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "edge-agent.json"


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    assert found, "promtool is missing: run scripts/ensure_promtool.sh"
    return subprocess.run([found, *args], check=False, capture_output=True, text=True, timeout=60, cwd=cwd)


def test_scrape_config_passes_promtool_check_config() -> None:
    done = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_scrape_config_with_its_targets_file_in_place(tmp_path: Path) -> None:
    """As mounted in the site compose: the file_sd path resolves, so promtool reads the real targets file."""
    text = (PROMETHEUS / "prometheus.yml").read_text()
    assert "/etc/prometheus/targets/devices.yml" in text
    (tmp_path / "prometheus.yml").write_text(text.replace("/etc/prometheus/targets/", f"{PROMETHEUS}/targets/"))
    done = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "does not exist" not in done.stdout + done.stderr


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
