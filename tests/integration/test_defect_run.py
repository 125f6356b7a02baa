"""`edge-agent run` over a folder of part images: pass/fail results, defect events and their JPEG snapshots
reach a plain MQTT subscriber on the broker."""

from __future__ import annotations

from pathlib import Path

from tests.support.agent import Collector, agent_config, run_agent
from tests.support.broker import Broker

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "defect-synthetic"
PARTS = ROOT / "examples" / "data" / "defect_demo"
PREFIX = "edge/v1/plant/line-1/"


def test_folder_run_publishes_results_events_and_snapshots(mosquitto: Broker, tmp_path: Path) -> None:
    pipeline = {"name": "line1", "source": {"kind": "folder", "path": str(PARTS)}, "model": {"path": str(MODEL)},
                "task": {"kind": "defect"}}  # fmt: skip
    path = agent_config(tmp_path, mosquitto.port, device={"site": "plant", "id": "line-1"}, pipelines=[pipeline])
    parts = sorted(p.name for p in PARTS.glob("*.jpg"))
    subscriber = Collector(mosquitto.host, mosquitto.port, PREFIX + "#")
    try:
        run_agent(path, tmp_path, 180)
        subscriber.wait_until(lambda s: len(s.json_on(PREFIX + "defect/result")) >= len(parts), 20)
        results = subscriber.json_on(PREFIX + "defect/result")
        events = subscriber.json_on(PREFIX + "defect/event")
        snapshots = {e["snapshot_topic"]: next(iter(subscriber.by_topic(e["snapshot_topic"])), None) for e in events}
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
