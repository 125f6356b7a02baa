"""`edge-agent demo`: the bundled models on sample inputs, an embedded broker, and what an operator would see."""

from __future__ import annotations

import csv
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.broker import EmbeddedBroker, free_port
from edge_agent.check import check_config
from edge_agent.config import AgentConfig, MqttConfig
from edge_agent.tasks.registry import TASKS, task_class
from edge_agent.tasks.sensor.dataio import parse_time

logger = logging.getLogger(__name__)
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "demo.yaml"
BUSINESS_CASE = DEFAULT_CONFIG.with_name("demo_business.json")


class OperatorView:
    """A plain MQTT subscriber printing events and a line of figures per result topic every few seconds."""

    def __init__(self, host: str, port: int, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self.counts: dict[str, int] = {}
        self.events = 0
        self._last: dict[str, float] = {}
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"demo-view-{os.getpid()}", protocol=paho.MQTTv311
        )
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.subscribe("edge/v1/#", qos=1)
        self._client.loop_start()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        leaf = "/".join(msg.topic.split("/")[4:])
        key = leaf.split("/snapshot/")[0]
        self.counts[key] = self.counts.get(key, 0) + 1
        if "/snapshot/" in leaf:
            print(f"  snapshot  {leaf} ({len(msg.payload)} bytes JPEG)", flush=True)
            return
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        if leaf.endswith("/event"):
            self.events += 1
            replay = " (replayed)" if body.get("replayed") else ""
            print(
                f"  EVENT     {body['task']}: {body['event']} on {body['subject']} {body.get('details', {})}{replay}",
                flush=True,
            )
        elif leaf.endswith("/result") and time.monotonic() - self._last.get(leaf, 0) >= self.every_s:
            self._last[leaf] = time.monotonic()
            print(f"  result    {leaf}: {summarise(body)}", flush=True)
        elif leaf == "metrics":
            for p in body.get("pipelines", []):
                if not p["count"]:
                    continue
                print(
                    f"  metrics   {p['pipeline']}: p95 {p['p95_ms']:.1f} ms, {p['under_target_ratio']:.0%} under "
                    f"{p['target_ms']:.0f} ms, {p['items']} items",
                    flush=True,
                )

    def stop(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def summarise(body: dict[str, Any]) -> str:
    """One line for a result: its job's dashboard says what matters (a job the registry does not know: raw JSON)."""
    data = body.get("data", {})
    task = data.get("task")
    if task not in TASKS:
        return json.dumps(data)[:120]
    return task_class(task).dashboard.summary(data)


def start_service(host: str, port: int) -> subprocess.Popen[bytes] | None:
    """roi_service beside the agent, when it is installed (extra `cloud`), on a fresh SQLite file.

    Returns once the service's MQTT consumer is connected and subscribed, so it stores every result the
    agent then publishes. Prints the dashboard's URL with a one-click login link for this run.
    """
    exe = shutil.which("roi-service") or str(Path(sys.executable).parent / "roi-service")
    if not Path(exe).exists():
        logger.info("roi_service is not installed (pip install -e '.[cloud]'); the demo runs without it")
        return None
    http_port = int(os.environ.get("ROI_DEMO_PORT", "8080"))
    if not _port_free(http_port):
        http_port = free_port()
    Path("var").mkdir(exist_ok=True)
    link = secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "ROI_MQTT_HOST": host,
        "ROI_MQTT_PORT": str(port),
        "ROI_TOKEN": os.environ.get("ROI_TOKEN", "demo-token"),
        "ROI_DATABASE_URL": os.environ.get("ROI_DATABASE_URL") or _fresh_demo_db(Path("var/roi-demo.db")),
        "ROI_DEMO_LOGIN_LINK": link,
    }
    subprocess.run([exe, "migrate"], env=env, check=False, capture_output=True)
    proc = subprocess.Popen([exe, "serve", "--host", "127.0.0.1", "--port", str(http_port)], env=env)
    if not _wait_subscribed(http_port, proc):
        logger.warning("roi_service did not report a broker connection within 60 s; early results may be missed")
    seed_business_case(f"http://127.0.0.1:{http_port}", env["ROI_TOKEN"], BUSINESS_CASE)
    print(
        f"roi_service dashboard: http://127.0.0.1:{http_port}/login/link/{link}  "
        f"(or http://127.0.0.1:{http_port}/ with token {env['ROI_TOKEN']})",
        flush=True,
    )
    return proc


def seed_business_case(base_url: str, token: str, path: Path) -> None:
    """The owner's figures of docs/roi.md's worked example (use cases and readiness), through the REST API."""
    case = json.loads(path.read_text())
    requests = [(f"/api/v1/use-cases/{urllib.parse.quote(u['name'])}", u) for u in case["use_cases"]]
    requests.append(("/api/v1/readiness", case["readiness"]))
    for route, body in requests:
        request = urllib.request.Request(  # noqa: S310 - base_url is the demo's own http://127.0.0.1 service
            base_url + route,
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - as above
                pass
        except OSError as exc:
            logger.warning("demo: could not store %s in roi_service: %s", route, exc)


def _fresh_demo_db(path: Path) -> str:
    """Each demo starts from an empty database, so its figures rest on this run's data alone."""
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    return f"sqlite:///{path}"


def _wait_subscribed(http_port: int, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> bool:
    """Poll the service's /metrics until its MQTT consumer is connected (it subscribes on connect)."""
    deadline = time.monotonic() + timeout_s
    url = f"http://127.0.0.1:{http_port}/metrics"
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if "roi_ingest_connected 1.0" in response.read().decode():
                    return True
        except OSError:
            pass  # not listening yet
        time.sleep(0.2)
    return False


def prepare_replays(config: AgentConfig, var: Path, now: float | None = None) -> None:
    """A fresh outbox; sensor CSVs re-timestamped to end when their replay ends (so they fall in the dashboard's
    periods); image folders looped so the line and the shelf keep going until the demo is stopped."""
    start = time.time() if now is None else now
    config.outbox.path = var / "demo-outbox.db"  # a fresh outbox: no backlog of an earlier demo is replayed
    for leftover in (config.outbox.path, *(var / f"demo-outbox.db{suffix}" for suffix in ("-wal", "-shm"))):
        leftover.unlink(missing_ok=True)
    for pc in config.pipelines:
        src: Any = pc.source
        if src.kind == "csv":
            src.path = retimestamp_csv(src.path, var / f"{pc.name}-replay.csv", src.timestamp_column, src.speed, start)
        elif src.kind == "folder":
            src.loop = True


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def retimestamp_csv(source: Path, target: Path, column: str, speed: float, start: float) -> Path:
    """A copy of a sensor CSV whose last sample falls when a replay begun at `start` reaches it."""
    with source.open(newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], [r for r in rows[1:] if r]
    ts_index = header.index(column)
    stamps = [parse_time(r[ts_index]) for r in body]
    span = stamps[-1] - stamps[0]
    shift = start + (span / speed if speed > 0 else 0.0) - stamps[-1]
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row, ts in zip(body, stamps):
            row[ts_index] = datetime.fromtimestamp(ts + shift, timezone.utc).isoformat().replace("+00:00", "Z")
            writer.writerow(row)
    return target


def run_demo(config_path: Path | None, seconds: float, with_service: bool = True) -> int:
    """Run the demo for `seconds` (0: until Ctrl-C), with roi_service subscribed before the agent starts."""
    from edge_agent.cli import run_app

    path = config_path or DEFAULT_CONFIG
    config = check_config(path)
    broker = None
    if config.mqtt is None:
        broker = EmbeddedBroker(free_port())
        broker.start()
        config.mqtt = MqttConfig(host=broker.host, port=broker.port, protocol="3.1.1")
        print(f"demo: no broker in {path.name}, started an embedded one on {broker.host}:{broker.port}", flush=True)
    assert config.mqtt is not None
    service = start_service(config.mqtt.host, config.mqtt.port) if with_service else None
    view = OperatorView(config.mqtt.host, config.mqtt.port)
    until = f"for {seconds:g}s" if seconds else "until Ctrl-C"
    print(f"demo: {len(config.pipelines)} pipeline(s) {until}; watching edge/v1/# as an operator would", flush=True)
    prepare_replays(config, Path("var"))  # now: the service is up, the replay starts at once
    try:
        code = run_app(config, seconds=seconds)
        time.sleep(1.0)
    finally:
        view.stop()
        if service is not None:
            service.terminate()
            service.wait(timeout=10)
        if broker is not None:
            broker.stop()
    print(
        f"demo: done; operator received {sum(view.counts.values())} messages, {view.events} events: "
        f"{json.dumps(view.counts, sort_keys=True)}",
        flush=True,
    )
    return code


if __name__ == "__main__":
    sys.exit(run_demo(None, 60.0))
