"""The retained status an operator's subscriber sees tracks each pipeline: starting, running, degraded with
its reason, stopped, and offline at the end; the last one agrees with /healthz."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.agent import Collector, agent_config, make_images, metrics_port, start_agent, stop_agent
from tests.support.broker import Broker

STATUS = "edge/v1/lab/dev1/status"


def states(collector: Collector, pipeline: str) -> list[tuple[str, str]]:
    """(state, detail) of one pipeline in every status message received, in order, repeats collapsed."""
    out: list[tuple[str, str]] = []
    for payload in collector.by_topic(STATUS):
        body = json.loads(payload)
        for p in body["pipelines"]:
            entry = (p["state"], p["detail"])
            if p["name"] == pipeline and (not out or out[-1] != entry):
                out.append(entry)
    return out


def healthz(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            body: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # 503 while a pipeline is unhealthy, with the same body
        body = json.loads(exc.read())
    return body


def test_status_follows_pipeline_states(mosquitto: Broker, tmp_path: Path) -> None:
    make_images(tmp_path / "few", count=40)
    config = agent_config(
        tmp_path,
        mosquitto.port,
        http={"port": 0, "health_stale_s": 1.5},
        pipelines=[
            {  # a replay of 40 images that ends on its own
                "name": "cls",
                "source": {"kind": "folder", "path": "few", "interval_s": 0.05},
                "model": {"path": str(Path(__file__).resolve().parents[1] / "data" / "tiny-classifier")},
                "task": {"kind": "classify"},
                "sinks": ["mqtt"],
            },
            {  # a stream nobody serves: the source backs off and the pipeline degrades
                "name": "cam",
                "source": {"kind": "camera", "url": "rtsp://127.0.0.1:9/none", "backoff": {"initial_s": 0.2}},
                "model": {"path": str(Path(__file__).resolve().parents[1] / "data" / "tiny-classifier")},
                "task": {"kind": "classify"},
                "sinks": ["mqtt"],
            },
        ],
    )
    collector = Collector(mosquitto.host, mosquitto.port, STATUS)
    agent = start_agent(config)
    try:
        port = metrics_port(tmp_path / "agent.log")
        assert collector.wait_until(lambda c: any(s == "stopped" for s, _ in states(c, "cls")), 30), states(
            collector, "cls"
        )
        assert collector.wait_until(lambda c: any(s == "degraded" for s, _ in states(c, "cam")), 30)
        cls = [s for s, _ in states(collector, "cls")]
        # The first retained status may already say running when the first result beat the broker connection.
        assert cls[0] in ("starting", "running") and "running" in cls and cls[-1] == "stopped", cls
        assert "degraded" not in cls, "a starting or finished replay is not shown as broken"
        cam_state, cam_detail = states(collector, "cam")[-1]
        assert cam_state == "degraded" and "cannot open stream rtsp://127.0.0.1:9/none" in cam_detail
        health = healthz(port)
        assert health["status"] == "unhealthy"
        pipelines = {name: health["pipelines"][name] for name in ("cls", "cam")}  # /healthz also checks the link
        assert pipelines == {"cls": "finished", "cam": cam_detail}, "status and /healthz say the same"
        first = json.loads(collector.by_topic(STATUS)[0])
        assert first["state"] == "online"
    finally:
        assert stop_agent(agent) == 0
    assert collector.wait_until(lambda c: json.loads(c.by_topic(STATUS)[-1])["state"] == "offline", 10)
    last = json.loads(collector.by_topic(STATUS)[-1])
    assert {p["state"] for p in last["pipelines"]} == {"stopped"}
    collector.stop()
    retained = Collector(mosquitto.host, mosquitto.port, STATUS)
    try:
        assert retained.wait_until(lambda c: bool(c.by_topic(STATUS)), 10), "status is retained"
        assert json.loads(retained.by_topic(STATUS)[-1])["state"] == "offline"
    finally:
        retained.stop()
