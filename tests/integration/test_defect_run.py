"""`edge-agent run` over a folder of part images: pass/fail results, defect events and their JPEG snapshots
reach a plain MQTT subscriber on the broker."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.broker import Broker

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "defect-synthetic"
PARTS = ROOT / "examples" / "data" / "defect_demo"
PREFIX = "edge/v1/plant/line-1/"


class Subscriber:
    """Everything published below the device's root, as a dashboard would receive it."""

    def __init__(self, broker: Broker) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(PREFIX + "#", qos=1)
        self.client.loop_start()
        time.sleep(0.3)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._lock:
            self.messages.append((message.topic[len(PREFIX) :], bytes(message.payload)))

    def leaf(self, leaf: str) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(p) for t, p in self.messages if t == leaf]

    def payload(self, leaf: str) -> bytes | None:
        with self._lock:
            return next((p for t, p in self.messages if t == leaf), None)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_folder_run_publishes_results_events_and_snapshots(mosquitto: Broker, tmp_path: Path) -> None:
    config = {
        "device": {"site": "plant", "id": "line-1"},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "home_assistant": {"enabled": False}},
        "outbox": {"path": "outbox.db"},
        "http": {"port": 0},
        "pipelines": [
            {
                "name": "line1",
                "source": {"kind": "folder", "path": str(PARTS)},
                "model": {"path": str(MODEL)},
                "task": {"kind": "defect"},
            }
        ],
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    parts = sorted(p.name for p in PARTS.glob("*.jpg"))
    subscriber = Subscriber(mosquitto)
    try:
        run = subprocess.run(
            [sys.executable, "-m", "edge_agent.cli", "run", str(path)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        deadline = time.monotonic() + 20
        while len(subscriber.leaf("defect/result")) < len(parts) and time.monotonic() < deadline:
            time.sleep(0.1)
        results = subscriber.leaf("defect/result")
        events = subscriber.leaf("defect/event")
        snapshots = {e["snapshot_topic"]: subscriber.payload(e["snapshot_topic"][len(PREFIX) :]) for e in events}
    finally:
        subscriber.stop()

    by_item = {r["data"]["item_id"]: r["data"] for r in results}
    assert sorted(by_item) == parts, "one pass/fail result per part, each with its file name"
    for data in by_item.values():
        assert data["passed"] == (data["score"] < data["threshold"]), data
    failed = sorted(item for item, data in by_item.items() if not data["passed"])
    assert sorted(e["subject"] for e in events) == failed, "one defect event per failed part"
    assert {e["event"] for e in events} == {"defect"}
    defective = [p for p in parts if not p.endswith("_good.jpg")]
    caught = [p for p in defective if p in failed]
    assert len(caught) >= 0.75 * len(defective), f"caught {caught} of {defective}"
    for topic, jpeg in snapshots.items():
        assert topic.startswith(PREFIX + "defect/snapshot/")
        assert jpeg is not None and jpeg.startswith(b"\xff\xd8\xff"), f"snapshot {topic} arrived as a JPEG"
