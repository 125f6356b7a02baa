"""Helpers to run the real agent as a process and to watch what a plain MQTT subscriber receives."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "data" / "tiny-classifier"


def make_images(folder: Path, count: int = 10) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = np.random.default_rng(i).integers(0, 255, (48, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{i:03d}.png"), image)
    return folder


def agent_config(workdir: Path, port: int, **overrides: Any) -> Path:
    """A config for the tiny classifier on a looping image folder at about 200 results/s."""
    make_images(workdir / "images")
    config: dict[str, Any] = {
        "device": {"site": "lab", "id": "dev1"},
        "mqtt": {
            "host": "127.0.0.1",
            "port": port,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1.0,
            "home_assistant": {"enabled": False},
        },
        "outbox": {"path": "outbox.db"},
        "http": {"port": 0},
        "metrics": {"publish_interval_s": 5},
        "pipelines": [
            {
                "name": "cls",
                "source": {"kind": "folder", "path": "images", "loop": True, "interval_s": 0.005},
                "model": {"path": str(TINY)},
                "task": {"kind": "classify"},
                "sinks": ["mqtt", "jsonl"],
                "jsonl_path": "produced.jsonl",
            }
        ],
    }
    for key, value in overrides.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    path = workdir / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_agent(config: Path, log_name: str = "agent.log") -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with (config.parent / log_name).open("ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "edge_agent.cli", "run", str(config)],
            cwd=config.parent,
            stdout=log,
            stderr=log,
            env=env,
        )


def run_agent(config: Path, cwd: Path, timeout_s: float) -> None:
    """`edge-agent run` until its replay sources end; a non-zero exit fails the test with the end of its stderr."""
    run = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "run", str(config)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]


def stop_agent(proc: subprocess.Popen[bytes], timeout_s: float = 25.0) -> int:
    """SIGTERM, then wait past the agent's own stop deadline (edge_agent.cli.STOP_DEADLINE_S)."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout_s)


def produced_ids(jsonl: Path) -> list[str]:
    """message_ids the agent committed (the jsonl sink writes after the outbox commit)."""
    ids = []
    for line in jsonl.read_bytes().splitlines():
        try:
            ids.append(json.loads(line)["message_id"])
        except (ValueError, KeyError):
            continue  # a line cut short by SIGKILL
    return ids


@dataclass
class Watcher:
    """A plain subscriber with a persistent session, as an operator's dashboard would have."""

    host: str
    port: int
    topic: str = "edge/v1/+/+/+/result"
    client_id: str = "test-watcher"
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Watcher:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False, protocol=paho.MQTTv311
        )
        self.client.reconnect_delay_set(0.2, 1.0)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(self.topic, qos=1)
        self.client.connect(self.host, self.port)
        self.client.loop_start()
        return self

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        body["_received_at"] = time.time()
        with self.lock:
            self.received.append(body)

    def ids(self) -> list[str]:
        with self.lock:
            return [m["message_id"] for m in self.received]

    def wait_for(self, wanted: set[str], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if wanted <= set(self.ids()):
                return True
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Collector:
    """A plain subscriber keeping every (topic, payload) it receives, undecoded (results, events, JPEG snapshots)."""

    def __init__(self, host: str, port: int, topic: str, username: str | None = None, password: str | None = None):
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect(host, port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise AssertionError(f"no SUBACK for {topic} from {host}:{port}")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def by_topic(self, topic: str) -> list[bytes]:
        with self._lock:
            return [payload for t, payload in self.messages if t == topic]

    def json_on(self, topic: str) -> list[dict[str, Any]]:
        """The JSON payloads received on one topic, in arrival order."""
        return [json.loads(payload) for payload in self.by_topic(topic)]

    def payloads(self) -> list[bytes]:
        with self._lock:
            return [payload for _, payload in self.messages]

    def wait_until(self, done: Callable[[Collector], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done(self):
                return True
            time.sleep(0.05)
        return done(self)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def metrics_port(log: Path, timeout_s: float = 30.0) -> int:
    """The /metrics port an agent started with http.port 0 wrote into its log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if "serving /metrics and /healthz on port" in line:
                return int(line.rsplit(" ", 1)[1])
        time.sleep(0.1)
    raise AssertionError("the agent did not start its HTTP server")


@contextlib.contextmanager
def forwarding(link: Any, forwarder: Any) -> Iterator[None]:
    """Run an MQTT link and an outbox forwarder for the block; both are stopped however it ends."""
    link.start()
    forwarder.start()
    try:
        yield
    finally:
        forwarder.stop()
        forwarder.join(5)
        link.stop()


def wait_drained(outbox: Any, timeout_s: float = 10.0) -> None:
    """Wait until every row of the outbox has been acknowledged and deleted (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while outbox.backlog and time.monotonic() < deadline:
        time.sleep(0.05)
