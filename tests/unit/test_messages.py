"""The MQTT contract: its public surface and one example payload of each kind are pinned here.

Changing a name or a field below breaks every dashboard and roi_service; do it with a schema version bump.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from edge_agent import messages as m

WHEN = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
ENVELOPE = {
    "message_id": "7d1f0b39-59a4-4c63-9d8e-1ed3b6a0f001",
    "seq": 42,
    "site": "shop-1",
    "device_id": "cam-1",
    "captured_at": "2026-11-22T12:00:00Z",
}

EXAMPLES = {
    "sensor result": {
        **ENVELOPE,
        "kind": "result",
        "pipeline": "pump",
        "model": "sensor-anomaly@1.0.0",
        "timing": {"preprocess_ms": 0.1, "inference_ms": 0.2, "decode_ms": 0.0, "logic_ms": 0.0, "total_ms": 0.3},
        "data": {
            "task": "sensor_anomaly",
            "score": 0.8,
            "threshold": 1.0,
            "anomalous": False,
            "window_start": "2026-11-22T11:59:00Z",
            "window_end": "2026-11-22T12:00:00Z",
            "top_channels": [{"channel": "vibration", "contribution": 0.7}],
        },
    },
    "defect result": {
        **ENVELOPE,
        "kind": "result",
        "pipeline": "line1",
        "model": "defect-synthetic@1.0.0",
        "timing": {"preprocess_ms": 1, "inference_ms": 5, "decode_ms": 0.5, "logic_ms": 0.1, "total_ms": 6.6},
        "data": {
            "task": "defect",
            "item_id": "000123",
            "passed": False,
            "score": 0.9,
            "threshold": 0.5,
            "defect_box": [10, 20, 30, 40],
        },
    },
    "shelf result": {
        **ENVELOPE,
        "kind": "result",
        "pipeline": "aisle3",
        "model": "shelf-detector@1.0.0",
        "timing": {"preprocess_ms": 1, "inference_ms": 9, "decode_ms": 1, "logic_ms": 0.2, "total_ms": 11.2},
        "data": {
            "task": "shelf",
            "detections": 12,
            "zones": [{"zone": "A1", "count": 2, "raw_count": 2, "capacity": 8, "state": "low"}],
        },
    },
    "event": {
        **ENVELOPE,
        "kind": "event",
        "pipeline": "aisle3",
        "task": "shelf",
        "event": "out_of_stock",
        "severity": "critical",
        "subject": "A1",
        "details": {"count": 0, "previous": 2},
    },
    "status": {
        **ENVELOPE,
        "kind": "status",
        "state": "online",
        "agent_version": "0.1.0",
        "pipelines": [{"name": "aisle3", "task": "shelf", "state": "running"}],
    },
    "model": {
        **ENVELOPE,
        "kind": "model",
        "models": [
            {
                "pipeline": "aisle3",
                "name": "shelf-detector",
                "version": "1.0.0",
                "variant": "onnx-int8",
                "sha256": "ab" * 32,
                "runtime": "onnxruntime",
            }
        ],
    },
    "metrics": {
        **ENVELOPE,
        "kind": "metrics",
        "period_s": 60,
        "uptime_s": 3600,
        "backlog": 0,
        "pipelines": [
            {
                "pipeline": "aisle3",
                "task": "shelf",
                "count": 600,
                "p50_ms": 12.0,
                "p95_ms": 18.5,
                "p99_ms": 25.0,
                "max_ms": 40.0,
                "under_target_ratio": 1.0,
            }
        ],
    },
    "bench": {**ENVELOPE, "kind": "bench", "fingerprint": {"cpu": "x"}, "verdicts": {"shelf": True}, "summary": []},
}


def test_public_surface_is_pinned() -> None:
    public = sorted(
        n
        for n in dir(m)
        if not n.startswith("_")
        and n[0].isupper()
        and n not in {"Any", "Annotated", "BaseModel", "ConfigDict", "Field", "Literal", "TypeAdapter"}
    )
    assert public == [
        "ActiveModel",
        "AnyMessage",
        "BenchResultMessage",
        "COMMANDS",
        "ChannelContribution",
        "ClassifyData",
        "CommandMessage",
        "DefectData",
        "Envelope",
        "EventMessage",
        "EventType",
        "LatencySummary",
        "MESSAGE_ADAPTER",
        "MetricsMessage",
        "ModelMessage",
        "ModelUpdateStatus",
        "PipelineStatus",
        "ResultData",
        "ResultMessage",
        "SCHEMA_VERSION",
        "SendStamp",
        "SensorAnomalyData",
        "ShelfData",
        "StatusMessage",
        "TASK_KINDS",
        "TOPIC_ROOT",
        "TaskKind",
        "Timing",
        "UpdateStep",
        "ZoneCount",
    ]
    assert m.TOPIC_ROOT == "edge/v1" and m.SCHEMA_VERSION == 1
    assert m.COMMANDS == ("snapshot", "reload", "set_threshold", "trigger", "resend", "model_update")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_payload_round_trips(name: str) -> None:
    payload = json.dumps(EXAMPLES[name]).encode()
    message = m.parse_message(payload)
    again = m.parse_message(message.model_dump_json())
    assert again == message
    assert message.replayed is False and message.schema_version == 1


def test_unknown_fields_and_kinds_are_rejected() -> None:
    with pytest.raises(ValidationError):
        m.parse_message(json.dumps({**EXAMPLES["status"], "colour": "red"}))
    with pytest.raises(ValidationError):
        m.parse_message(json.dumps({**EXAMPLES["status"], "kind": "gossip"}))
    with pytest.raises(ValidationError):
        m.parse_message(b"not json")


def test_stamp_for_send_adds_fields_without_reserialising() -> None:
    msg = m.StatusMessage(seq=1, site="s", device_id="d", captured_at=WHEN, state="online")
    stored = m.serialize_for_store(msg)
    assert b"published_at" not in stored
    sent = m.stamp_for_send(stored, WHEN, replayed=True)
    parsed = m.parse_message(sent)
    assert parsed.replayed is True and parsed.published_at == WHEN
    assert parsed.message_id == msg.message_id


def test_topics() -> None:
    assert m.topic("shop-1", "cam-1", "shelf/result") == "edge/v1/shop-1/cam-1/shelf/result"
    assert m.parse_topic("edge/v1/shop-1/cam-1/shelf/event") == ("shop-1", "cam-1", "shelf/event")
    with pytest.raises(ValueError, match="topic level"):
        m.check_segment("a/b", "device id")
    with pytest.raises(ValueError):
        m.parse_topic("other/v1/x")


def test_message_ids_are_unique_uuids() -> None:
    a = m.StatusMessage(seq=1, site="s", device_id="d", captured_at=WHEN, state="online")
    b = m.StatusMessage(seq=2, site="s", device_id="d", captured_at=WHEN, state="online")
    assert isinstance(a.message_id, uuid.UUID) and a.message_id != b.message_id


def test_each_result_says_whether_it_asks_for_attention() -> None:
    assert m.DefectData(item_id="a", passed=False, score=2.0, threshold=1.0).flagged() is True
    assert m.DefectData(item_id="a", passed=True, score=0.5, threshold=1.0).flagged() is False
    sensor = {"score": 3.0, "threshold": 1.0, "window_start": WHEN, "window_end": WHEN}
    assert m.SensorAnomalyData(anomalous=True, **sensor).flagged() is True
    assert m.SensorAnomalyData(anomalous=False, **sensor).flagged() is False
    ok, low = m.ZoneCount(zone="a", count=5, raw_count=5), m.ZoneCount(zone="b", count=1, raw_count=1, state="low")
    assert m.ShelfData(zones=[ok], detections=5).flagged() is False
    assert m.ShelfData(zones=[ok, low], detections=6).flagged() is True
    assert m.ClassifyData(label="cat", score=0.9).flagged() is None
