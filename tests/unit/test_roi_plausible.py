"""roi_service refuses what cannot be true, each by its reason; the time window follows the settings."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from roi_service.config import IngestSettings
from roi_service.ingest.classify import Accepted, Incoming, Rejected, classify
from roi_service.ingest.plausible import limits_for
from roi_service.simulate import EPOCH, Device, payload

NOW = EPOCH + timedelta(minutes=1)


def result_body(**changes: object) -> tuple[str, bytes]:
    topic, message = Device("s1", "d1").result(EPOCH)
    body = json.loads(payload(message))
    for key, value in changes.items():
        target = body
        *path, last = key.split("__")
        for part in path:
            target = target[part]
        target[last] = value
    return topic, json.dumps(body, allow_nan=True).encode()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"timing__total_ms": float("nan")}, "not_finite"),
        ({"timing__inference_ms": float("inf")}, "not_finite"),
        ({"timing__decode_ms": -0.5}, "negative_latency"),
        ({"captured_at": "0001-01-01T00:00:00Z"}, "timestamp"),
        ({"captured_at": "1970-01-01T00:00:00Z"}, "timestamp"),
        ({"captured_at": "9999-12-31T23:59:59Z"}, "timestamp"),
        ({"data__item_id": "x" * 2000}, "string"),
        ({"model": "<script>alert(1)</script>"}, "string"),
        ({"device_id": "d2"}, "topic_mismatch"),
    ],
)
def test_what_cannot_be_true_is_refused_by_reason(change: dict[str, object], reason: str) -> None:
    topic, body = result_body(**change)
    decision = classify(Incoming(topic, body, False, NOW))
    assert isinstance(decision, Rejected) and decision.reason == reason, decision


def test_a_plausible_result_is_accepted() -> None:
    topic, body = result_body()
    assert isinstance(classify(Incoming(topic, body, False, NOW)), Accepted)


def test_the_time_window_is_configurable() -> None:
    topic, body = result_body()
    late = Incoming(topic, body, False, EPOCH + timedelta(days=40))
    assert isinstance(classify(late), Rejected)
    wide = limits_for(IngestSettings(max_past_s=60 * 86400))
    assert isinstance(classify(late, wide), Accepted)


def test_oversized_payloads_and_snapshots_are_refused() -> None:
    dev = Device("s1", "d1")
    huge = Incoming(dev.topic("defect/result"), b"{" + b" " * 70_000 + b"}", False, NOW)
    assert classify(huge) == Rejected("size", "70002 bytes on result (at most 65536)")
    jpeg = b"\xff\xd8\xff\xe0" + bytes(2 * 1024 * 1024) + b"\xff\xd9"
    decision = classify(Incoming(dev.topic("defect/snapshot/a1"), jpeg, False, NOW))
    assert isinstance(decision, Rejected) and decision.reason == "snapshot"
    truncated = classify(Incoming(dev.topic("defect/snapshot/a2"), b"\xff\xd8\xff\xe0" + bytes(100), False, NOW))
    assert isinstance(truncated, Rejected) and "complete JPEG" in truncated.detail


def test_a_forged_status_with_markup_is_refused() -> None:
    dev = Device("s1", "d1")
    topic, status = dev.status(EPOCH, "online")
    body = json.dumps({**json.loads(payload(status)), "agent_version": "<script>x</script>"}).encode()
    decision = classify(Incoming(topic, body, False, NOW))
    assert isinstance(decision, Rejected) and decision.reason == "string"
