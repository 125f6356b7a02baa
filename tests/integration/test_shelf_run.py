"""`edge-agent run` with the default shelf model over the demo shelf: every frame's counts reach a plain MQTT
subscriber, each result naming its picture, and the stock events of the story arrive."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from tests.support.agent import Collector, agent_config, run_agent
from tests.support.broker import Broker

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "shelf-detector"
DEMO = ROOT / "examples" / "data" / "shelf_demo"
PREFIX = "edge/v1/store/aisle-3/"


def test_run_publishes_counts_that_name_their_frame_and_stock_events(mosquitto: Broker, tmp_path: Path) -> None:
    zones = yaml.safe_load((DEMO / "zones.yaml").read_text())
    task = {"kind": "shelf", **zones, "smoothing_frames": 1, "debounce_frames": 1}
    pipeline = {"name": "shelf", "source": {"kind": "folder", "path": str(DEMO)}, "model": {"path": str(MODEL)},
                "task": task}  # fmt: skip
    path = agent_config(tmp_path, mosquitto.port, device={"site": "store", "id": "aisle-3"}, pipelines=[pipeline])
    frames = sorted(p.name for p in DEMO.glob("frame_*.jpg"))
    subscriber = Collector(mosquitto.host, mosquitto.port, PREFIX + "#")
    try:
        run_agent(path, tmp_path, 240)
        subscriber.wait_until(lambda s: len(s.json_on(PREFIX + "shelf/result")) >= len(frames), 30)
        results, events = subscriber.json_on(PREFIX + "shelf/result"), subscriber.json_on(PREFIX + "shelf/event")
    finally:
        subscriber.stop()

    by_frame = {r["data"]["frame_id"]: r for r in results}
    assert sorted(by_frame) == frames, "one result per picture, each naming its file"
    truth = json.loads((DEMO / "truth.json").read_text())
    errors = [
        abs(zone["count"] - truth[zone["zone"]][frames.index(name)])
        for name, result in by_frame.items()
        for zone in result["data"]["zones"]
    ]
    assert np.mean(errors) <= 0.5, f"count errors per zone and frame: {errors}"
    assert all(r["captured_at"] for r in results)
    assert {"low_stock", "out_of_stock"} <= {e["event"] for e in events}
    assert all(e["details"]["frame_id"] in frames for e in events), "each event names the frame that raised it"
