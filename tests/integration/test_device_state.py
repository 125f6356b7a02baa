"""What an operator sees of a device on the broker: retained status and models, last will, Home Assistant
discovery, and commands answered through one table."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.support.agent import TINY, agent_config, start_agent, stop_agent
from tests.support.broker import Broker


def sub(broker: Broker, topic: str, count: int, timeout_s: int = 15) -> list[tuple[str, str]]:
    out = subprocess.run(
        [
            "mosquitto_sub",
            "-h",
            broker.host,
            "-p",
            str(broker.port),
            "-t",
            topic,
            "-C",
            str(count),
            "-W",
            str(timeout_s),
            "-v",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return [tuple(line.split(" ", 1)) for line in out.stdout.splitlines() if " " in line]  # type: ignore[misc]


def pub(broker: Broker, topic: str, payload: str) -> None:
    subprocess.run(
        ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-t", topic, "-q", "1", "-m", payload], check=True
    )


def wait_log(log: Path, text: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {log}")


def test_status_models_discovery_and_last_will(mosquitto: Broker, tmp_path: Path) -> None:
    config = agent_config(tmp_path, mosquitto.port, mqtt={"home_assistant": {"enabled": True}})
    agent = start_agent(config)
    try:
        wait_log(tmp_path / "agent.log", "connected to broker")
        status = json.loads(sub(mosquitto, "edge/v1/lab/dev1/status", 1)[0][1])
        assert status["state"] == "online" and status["pipelines"][0]["name"] == "cls"
        model = json.loads(sub(mosquitto, "edge/v1/lab/dev1/model", 1)[0][1])
        assert model["models"][0]["name"] == "tiny-classifier" and len(model["models"][0]["sha256"]) == 64
        discovery = sub(mosquitto, "homeassistant/#", 1)
        assert discovery and discovery[0][0].endswith("/config")
        entity = json.loads(discovery[0][1])
        assert entity["availability"][0]["topic"] == "edge/v1/lab/dev1/status"
        assert "object_id" not in entity and entity["default_entity_id"].split(".")[1] == entity["unique_id"]
    finally:
        if agent.poll() is None:
            stop_agent(agent)


def test_last_will_says_offline_when_the_device_dies(mosquitto: Broker, tmp_path: Path) -> None:
    config = agent_config(tmp_path, mosquitto.port, mqtt={"keepalive_s": 5})
    agent = start_agent(config)
    wait_log(tmp_path / "agent.log", "connected to broker")
    agent.send_signal(signal.SIGKILL)
    agent.wait()
    deadline = time.monotonic() + 20
    state = None
    while time.monotonic() < deadline and state != "offline":
        state = json.loads(sub(mosquitto, "edge/v1/lab/dev1/status", 1, 5)[0][1])["state"]
        time.sleep(0.5)
    assert state == "offline"


def test_graceful_stop_publishes_offline(mosquitto: Broker, tmp_path: Path) -> None:
    agent = start_agent(agent_config(tmp_path, mosquitto.port))
    wait_log(tmp_path / "agent.log", "connected to broker")
    assert stop_agent(agent) == 0
    assert json.loads(sub(mosquitto, "edge/v1/lab/dev1/status", 1)[0][1])["state"] == "offline"


def test_commands_through_one_table(mosquitto: Broker, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(TINY, model_dir)
    config = agent_config(tmp_path, mosquitto.port)
    data = yaml.safe_load(config.read_text())
    data["pipelines"][0]["model"]["path"] = str(model_dir)
    config.write_text(yaml.safe_dump(data))
    agent = start_agent(config)
    root = "edge/v1/lab/dev1"
    try:
        wait_log(tmp_path / "agent.log", "connected to broker")
        time.sleep(1)

        def command(name: str, body: dict[str, object]) -> dict[str, object]:
            proc = subprocess.Popen(
                [
                    "mosquitto_sub",
                    "-h",
                    mosquitto.host,
                    "-p",
                    str(mosquitto.port),
                    "-t",
                    f"{root}/cmd/{name}/reply",
                    "-C",
                    "1",
                    "-W",
                    "15",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(0.5)
            pub(mosquitto, f"{root}/cmd/{name}", json.dumps(body))
            out, _ = proc.communicate(timeout=20)
            return json.loads(out)["args"]  # type: ignore[no-any-return]

        reply = command("set_threshold", {"request_id": "r1", "args": {"value": 0.99}})
        assert reply["ok"] is True
        time.sleep(1)
        labels = {json.loads(p)["data"]["label"] for _, p in sub(mosquitto, f"{root}/classify/result", 20)}
        assert labels == {"unknown"}, "a raised threshold takes effect at once"

        bad = command("set_threshold", {"args": {"value": "high"}})
        assert bad["ok"] is False and "number" in str(bad["detail"])
        assert command("warp", {})["ok"] is False

        snap = command("snapshot", {})
        assert snap["ok"] is True and "/classify/snapshot/" in str(snap["detail"])

        (model_dir / "model.int8.onnx").write_bytes(b"corrupt")
        refused = command("reload", {})
        assert refused["ok"] is False and "does not match the manifest" in str(refused["detail"])
        time.sleep(1)
        assert sub(mosquitto, f"{root}/classify/result", 3), "the previous model keeps running"
        assert agent.poll() is None
    finally:
        stop_agent(agent)


HANGING_STOP = """
import sys, threading
import edge_agent.app, edge_agent.cli
edge_agent.cli.STOP_DEADLINE_S = 2.0
edge_agent.app.App.stop = lambda self, drain_s=1.5: threading.Event().wait()  # a stop that never returns
sys.exit(edge_agent.cli.main(["run", sys.argv[1]]))
"""


def test_a_stop_that_hangs_still_ends_the_process_with_the_stacks(tmp_path: Path) -> None:
    """SIGTERM and a stop that never returns: the process ends after STOP_DEADLINE_S with every thread's stack
    on stderr, instead of running on until the service manager kills it."""
    config = agent_config(tmp_path, 1, mqtt={"reconnect_max_s": 1.0})  # no broker there: nothing to wait for
    with (tmp_path / "agent.log").open("ab") as log:
        agent = subprocess.Popen([sys.executable, "-c", HANGING_STOP, str(config)], cwd=tmp_path, stdout=log,
                                 stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    try:
        wait_log(tmp_path / "agent.log", "status: cls running")
        started = time.monotonic()
        code = stop_agent(agent, timeout_s=20)
    finally:
        if agent.poll() is None:  # the stop deadline failed: do not leave the agent running
            agent.kill()
            agent.wait()
    text = (tmp_path / "agent.log").read_text(errors="replace")
    assert code != 0 and time.monotonic() - started < 15
    assert "signal 15: stopping" in text and "Thread 0x" in text and "<lambda>" in text
