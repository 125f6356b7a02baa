"""Pipelines on real models and real sources: stage histograms, source loss and recovery, health, commands."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from edge_agent.app import App
from edge_agent.config import AgentConfig
from tests.support.agent import TINY


def write_video(path: Path, frames: int = 40) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (64, 48))
    rng = np.random.default_rng(1)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    return path


def config_for(tmp_path: Path, pipelines: list[dict[str, Any]], **extra: Any) -> AgentConfig:
    data: dict[str, Any] = {
        "device": {"site": "lab", "id": "dev1"},
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "http": {"port": 0, "health_stale_s": 2},
        "pipelines": pipelines,
        **extra,
    }
    return AgentConfig.model_validate(data)


def camera_pipeline(name: str, video: Path, runtime: str, loop: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"kind": "camera", "file": str(video), "loop": loop, "backoff": {"initial_s": 0.1, "max_s": 0.3}},
        "model": {"path": str(TINY), "runtime": {"kind": runtime}},
        "task": {"kind": "classify"},
        "sinks": ["jsonl"],
        "jsonl_path": str(video.parent / f"{name}.jsonl"),
    }


def http_get(app: App, path: str) -> tuple[int, str]:
    assert app.http is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{app.http.port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_until(predicate: Any, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_onnx_and_tflite_pipelines_on_a_video_file_show_stage_histograms(tmp_path: Path) -> None:
    video = write_video(tmp_path / "line.avi")
    config = config_for(
        tmp_path, [camera_pipeline("onnx", video, "onnxruntime"), camera_pipeline("tflite", video, "litert")]
    )
    app = App(config, CollectorRegistry())
    app.start()
    try:
        assert wait_until(app.finished, 30)
        status, text = http_get(app, "/metrics")
    finally:
        app.stop()
    assert status == 200
    for name in ("onnx", "tflite"):
        results = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        assert results and all(r["data"]["task"] == "classify" for r in results)
        for stage in ("preprocess", "inference", "decode", "logic", "total"):
            assert f'edge_stage_seconds_count{{pipeline="{name}",stage="{stage}"}}' in text
    seqs = [
        json.loads(line)["seq"]
        for name in ("onnx", "tflite")
        for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()
    ]
    # File-only pipelines send nothing to the cloud, so their results take no seq (a seq the cloud never receives
    # counts there as a lost message): they repeat the outbox's last one, which only the metrics messages moved.
    assert app.outbox is not None
    assert app.outbox.current_seq() < len(seqs) and max(seqs) <= app.outbox.current_seq(), (len(seqs), max(seqs))


def test_lost_camera_file_is_reported_retried_and_recovered(tmp_path: Path) -> None:
    video = write_video(tmp_path / "cam.avi", frames=10)
    spare = tmp_path / "spare.avi"
    shutil.copy(video, spare)
    config = config_for(tmp_path, [camera_pipeline("cam", video, "onnxruntime", loop=True)])
    registry = CollectorRegistry()
    app = App(config, registry)
    app.start()

    def up() -> float:
        return registry.get_sample_value("edge_source_up", {"pipeline": "cam"}) or 0.0

    try:
        assert wait_until(lambda: http_get(app, "/healthz")[0] == 200)
        video.unlink()
        assert wait_until(lambda: up() == 0.0), "source loss shows in metrics"
        assert wait_until(lambda: http_get(app, "/healthz")[0] == 503, 10), "and in health"
        _status, body = http_get(app, "/healthz")
        assert "source" in json.loads(body)["pipelines"]["cam"]
        retries = registry.get_sample_value("edge_source_reconnects_total", {"pipeline": "cam"}) or 0
        assert retries >= 1
        shutil.copy(spare, video)
        assert wait_until(lambda: up() == 1.0), "the source comes back by itself"
        assert wait_until(lambda: http_get(app, "/healthz")[0] == 200, 10)
        assert app.pipelines[0].is_alive()
    finally:
        app.stop()


def test_rtsp_server_gone_is_retried_without_stopping_other_pipelines(tmp_path: Path) -> None:
    video = write_video(tmp_path / "ok.avi")
    dead = camera_pipeline("rtsp", video, "onnxruntime")
    dead["source"] = {"kind": "camera", "url": "rtsp://127.0.0.1:1/stream", "backoff": {"initial_s": 0.1, "max_s": 0.2}}
    config = config_for(tmp_path, [dead, camera_pipeline("file", video, "onnxruntime", loop=True)])
    registry = CollectorRegistry()
    app = App(config, registry)
    app.start()
    try:
        assert wait_until(
            lambda: (registry.get_sample_value("edge_source_reconnects_total", {"pipeline": "rtsp"}) or 0) >= 2
        )
        assert wait_until(lambda: (registry.get_sample_value("edge_items_total", {"pipeline": "file"}) or 0) > 20)
        _ok, reasons = app.health()
        assert reasons["file"] == "ok"
    finally:
        app.stop()


def test_shutdown_is_quick(tmp_path: Path) -> None:
    video = write_video(tmp_path / "cam.avi", frames=10)
    app = App(config_for(tmp_path, [camera_pipeline("cam", video, "onnxruntime", loop=True)]), CollectorRegistry())
    app.start()
    time.sleep(1)
    started = time.monotonic()
    app.stop()
    assert time.monotonic() - started < 5


def test_failing_sink_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from edge_agent.sinks import LogSink

    def broken(self: LogSink, messages: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(LogSink, "publish", broken)
    video = write_video(tmp_path / "cam.avi", frames=10)
    pipe = camera_pipeline("cam", video, "onnxruntime")
    pipe["sinks"] = ["log", "jsonl"]
    registry = CollectorRegistry()
    app = App(config_for(tmp_path, [pipe]), registry)
    app.start()
    try:
        assert wait_until(app.finished, 20)
    finally:
        app.stop()
    items = registry.get_sample_value("edge_items_total", {"pipeline": "cam"})
    assert items and len((tmp_path / "cam.jsonl").read_text().splitlines()) == items
    assert registry.get_sample_value("edge_sink_errors_total", {"pipeline": "cam", "sink": "log"}) == items
    assert sum("sink log failed" in r.getMessage() for r in caplog.records) == 1, "logged once per episode"
