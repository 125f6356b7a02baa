"""A CSV sensor replay through the shipped sensor model, on ONNX Runtime and LiteRT, and through `edge-agent run`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from edge_agent.app import App
from edge_agent.config import AgentConfig
from tests.support.broker import Broker

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "sensor-anomaly"
DEMO_CSV = ROOT / "examples" / "data" / "machine_demo.csv"


def sensor_pipeline(name: str, csv: Path, runtime: str, jsonl: Path) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"kind": "csv", "path": str(csv), "speed": 0},
        "model": {"path": str(MODEL), "runtime": {"kind": runtime}},
        "task": {"kind": "sensor_anomaly"},
        "sinks": ["jsonl"],
        "jsonl_path": str(jsonl),
    }


def short_csv(tmp_path: Path, rows: int, bad_rows: bool = False) -> Path:
    lines = DEMO_CSV.read_text().splitlines()[: rows + 1]
    if bad_rows:
        lines.insert(50, "2026-01-05T08:00:49Z,abc,1,2,3,4,0,")
        lines.insert(80, "not a row at all")
    path = tmp_path / "replay.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("runtime", ["onnxruntime", "litert"])
def test_csv_replay_scores_every_window_and_shows_window_latency(tmp_path: Path, runtime: str) -> None:
    csv = short_csv(tmp_path, 400, bad_rows=True)
    jsonl = tmp_path / "out.jsonl"
    config = AgentConfig.model_validate(
        {
            "device": {"site": "plant", "id": "pump-7"},
            "outbox": {"path": str(tmp_path / "outbox.db")},
            "http": {"port": 0},
            "pipelines": [sensor_pipeline("pump", csv, runtime, jsonl)],
        }
    )
    registry = CollectorRegistry()
    app = App(config, registry)
    app.start()
    try:
        for _ in range(300):
            if app.finished():
                break
            app.pipelines[0].join(0.1)
        assert app.http is not None
        import urllib.request

        text = urllib.request.urlopen(f"http://127.0.0.1:{app.http.port}/metrics", timeout=5).read().decode()
    finally:
        app.stop()
    results = [json.loads(line) for line in jsonl.read_text().splitlines()]
    windows = [r for r in results if r["kind"] == "result"]
    window = yaml.safe_load((MODEL / "manifest.yaml").read_text())["params"]["window"]["size"]
    assert len(windows) == 400 - window + 1, "one result per window over the good rows"
    assert all(r["data"]["task"] == "sensor_anomaly" for r in windows)
    assert registry.get_sample_value("edge_input_errors_total", {"pipeline": "pump", "reason": "malformed_row"}) == 2
    assert 'edge_stage_seconds_count{pipeline="pump",stage="inference"}' in text
    assert 'edge_stage_seconds_bucket{le="0.005",pipeline="pump",stage="total"}' in text


def test_edge_agent_run_publishes_anomaly_events_to_a_plain_subscriber(mosquitto: Broker, tmp_path: Path) -> None:
    config = {
        "device": {"site": "plant", "id": "pump-7"},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "home_assistant": {"enabled": False}},
        "outbox": {"path": "outbox.db"},
        "http": {"port": 0},
        "pipelines": [
            {
                "name": "pump",
                "source": {"kind": "csv", "path": str(DEMO_CSV), "speed": 0},
                "model": {"path": str(MODEL)},
                "task": {"kind": "sensor_anomaly"},
            }
        ],
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    sub = subprocess.Popen(
        [
            "mosquitto_sub",
            "-h",
            mosquitto.host,
            "-p",
            str(mosquitto.port),
            "-t",
            "edge/v1/plant/pump-7/sensor_anomaly/event",
            "-W",
            "120",
            "-C",
            "2",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    run = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "run", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out, _ = sub.communicate(timeout=130)
    assert run.returncode == 0, run.stderr[-2000:]
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events] == ["anomaly_start", "anomaly_end"]
    assert events[0]["details"]["top_channels"], "the channels that contributed most are named"
