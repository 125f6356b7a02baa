"""A staged rollout from roi_service's registry across three running agents: it advances stage by stage while
devices pass probation, and when one device fails, it stops and the devices already moved go back."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml

from roi_service.api.app import create_app
from roi_service.config import MqttSettings
from roi_service.db.engine import make_engine, migrate
from roi_service.registry.rollout import stage_order
from roi_service.registry.service import RegistryService
from tests.support.agent import start_agent, stop_agent
from tests.support.broker import Broker
from tests.support.fleet import brightness_images, model_folder, pack

TOKEN = "registry-test-token"
DEVICES = ["lab/cam-a", "lab/cam-b", "lab/cam-c"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def api(base: str, path: str, body: bytes | dict[str, Any] | None = None) -> Any:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    request = urllib.request.Request(f"{base}{path}", data=data, headers=headers, method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def agent_config(workdir: Path, device: str, port: int, bright: bool, first: Path) -> Path:
    site, device_id = device.split("/")
    images = workdir / "images"
    images.mkdir(parents=True)
    brightness_images(workdir / "all")
    for frame in sorted((workdir / "all").iterdir())[8:] if bright else sorted((workdir / "all").iterdir())[:4]:
        frame.rename(images / frame.name)  # the bad device sees only bright frames, the others only dark ones
    config = {
        "device": {"site": site, "id": device_id},
        "mqtt": {"host": "127.0.0.1", "port": port, "home_assistant": {"enabled": False}},
        "outbox": {"path": "outbox.db"}, "http": {"port": 0}, "metrics": {"target_ms": 5000},
        "fleet": {"store": "store", "allow_plain_http": True, "probation_s": 2.0, "check_interval_s": 0.2,
                  "min_items": 15},
        "pipelines": [{"name": "cls", "source": {"kind": "folder", "path": "images", "loop": True, "interval_s": 0.04},
                       "model": {"path": str(first)}, "task": {"kind": "classify"}}],
    }  # fmt: skip
    (workdir / "agent.yaml").write_text(yaml.safe_dump(config))
    return workdir / "agent.yaml"


@pytest.fixture
def registry(tmp_path: Path, mosquitto: Broker) -> Iterator[tuple[str, RegistryService]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'roi.db'}")
    migrate(engine)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    svc = RegistryService(tmp_path / "registry", base, MqttSettings(host=mosquitto.host, port=mosquitto.port))
    server = uvicorn.Server(uvicorn.Config(create_app(engine, TOKEN, registry=svc), host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    svc.start()
    wait(lambda: server.started, 30, "roi_service to listen")
    try:
        yield base, svc
    finally:
        svc.stop()
        server.should_exit = True
        thread.join(10)


def test_rollout_advances_by_stage_and_stops_and_rolls_back_on_a_failing_device(
    tmp_path: Path, mosquitto: Broker, registry: tuple[str, RegistryService]
) -> None:
    base, svc = registry
    v1 = model_folder(tmp_path / "built", "1.0.0")  # never fails
    v2 = model_folder(tmp_path / "built", "2.0.0", error_above=0.1)  # fails on bright frames
    assert api(base, "/api/registry/models", pack(v1))["version"] == "1.0.0"
    assert api(base, "/api/registry/models", pack(v2))["version"] == "2.0.0"
    order = stage_order(DEVICES)  # 3 devices: stage 1 = order[0], stage 2 adds order[1], stage 3 adds order[2]
    bad = order[-1]
    agents: list[subprocess.Popen[bytes]] = []
    try:
        for device in DEVICES:
            config = agent_config(tmp_path / device.replace("/", "_"), device, mosquitto.port, device == bad, v1)
            agents.append(start_agent(config))
        wait(lambda: len(svc.devices_running("tiny-classifier")) == 3, 60, "three devices on the model topic")
        rollout = api(base, "/api/registry/rollouts", {"name": "tiny-classifier", "version": "2.0.0",
                                                       "rollback_to": "1.0.0"})  # fmt: skip
        assert [d["device"] for d in rollout["devices"]] == order
        assert [d["stage"] for d in rollout["devices"]] == [0, 1, 2]
        assert [d["status"] for d in rollout["devices"]] == ["sent", "waiting", "waiting"]

        def state() -> dict[str, Any]:
            return dict(api(base, "/api/registry/rollouts")[-1])

        wait(lambda: state()["state"] == "stopped", 120, "the rollout to stop on the bad device")
        wait(lambda: all(d["status"] in ("reverted", "rolled_back") for d in state()["devices"]), 90,
             "the moved devices to go back")  # fmt: skip
        final = state()
        statuses = {d["device"]: d["status"] for d in final["devices"]}
        assert final["stage"] == 2, "the rollout reached the last stage before the bad device failed"
        assert statuses == {order[0]: "reverted", order[1]: "reverted", bad: "rolled_back"}
        assert bad in final["reason"] and "error rate" in final["reason"]
        versions = lambda: {r["version"] for r in api(base, "/api/registry/devices")}  # noqa: E731
        wait(lambda: versions() == {"1.0.0"}, 30, "every device on 1.0.0")
        request = urllib.request.Request(f"{base}/registry", headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            page = response.read().decode()
        assert "tiny-classifier 2.0.0: stopped, stage 3 of 3 (100 %)" in page
        assert all(f"<td>{d}</td>" in page for d in DEVICES) and "<td>reverted</td>" in page
    finally:
        for agent in agents:
            stop_agent(agent)
