"""docs/technician.md on a desk: pki.sh, the deploy Mosquitto config over TLS, `edge-agent run`, mosquitto_sub.

No device and no camera: a folder of images stands in for the camera. Everything else is what a technician
runs: deploy/mosquitto/pki.sh makes the CA, the broker certificate and the credentials, Mosquitto runs the
committed deploy/mosquitto/mosquitto.conf with only its paths and port moved into tmp, the agent gets its
identity from the device bundle's device.env, and results are read back with mosquitto_sub as the operator.
"""

from __future__ import annotations

import getpass
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.broker import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
PKI = ROOT / "deploy" / "mosquitto" / "pki.sh"
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
MODEL = ROOT / "tests" / "data" / "tiny-classifier"
SITE, DEVICE = "shop-1", "pi-01"
WAIT_S = 90.0


@dataclass
class Stack:
    """The running desk setup and what a test needs to talk to it."""

    site_dir: Path
    bundle: Path
    port: int
    http_port: int
    operator_password: str
    agent_log: Path
    broker_log: Path
    broker_pid: int

    def sub(self, topic: str, count: int, wait_s: float, user: str = "operator", password: str | None = None) -> str:
        """mosquitto_sub over TLS with credentials, as in docs/technician.md; returns its `-v` output."""
        cmd = [*self._tls("mosquitto_sub", user, password), "-t", topic, "-C", str(count), "-W", str(int(wait_s)), "-v"]
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=wait_s + 10)
        assert done.returncode == 0, f"mosquitto_sub failed ({done.returncode}): {done.stderr}\n{self.logs()}"
        return done.stdout

    def _tls(self, tool: str, user: str, password: str | None) -> list[str]:
        secret = self.operator_password if password is None else password
        return [tool, "-h", "127.0.0.1", "-p", str(self.port), "--cafile", str(self.site_dir / "ca" / "ca.crt"),
                "-u", user, "-P", secret, "-V", "mqttv311"]  # fmt: skip

    def logs(self) -> str:
        tail = [f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:] for p in (self.agent_log, self.broker_log)]
        return "\n".join(tail)


def pki(*args: str) -> None:
    subprocess.run(["bash", str(PKI), *args], check=True, capture_output=True, text=True)


def adapt_mosquitto_conf(text: str, site_dir: Path, data_dir: Path, port: int, log: Path) -> str:
    """The committed config with container paths and the port moved to tmp; every rule stays as shipped."""
    moves = {
        "/mosquitto/config/site/": f"{site_dir}/broker/",
        "/mosquitto/data/": f"{data_dir}/",
        "listener 8883\n": f"listener {port} 127.0.0.1\n",
        "log_dest stdout\n": f"log_dest file {log}\n",
    }
    for old, new in moves.items():
        assert old in text, f"deploy/mosquitto/mosquitto.conf no longer contains {old!r}: update this test"
        text = text.replace(old, new)
    # Started as root, Mosquitto drops to the `mosquitto` user, which cannot read a private tmp folder.
    return text + f"user {getpass.getuser()}\n"


def agent_command() -> list[str]:
    script = Path(sys.executable).parent / "edge-agent"
    return [str(script)] if script.exists() else [sys.executable, "-m", "edge_agent.cli"]


def device_env(bundle: Path) -> dict[str, str]:
    """device.env as a technician copies it, with the bundle's files where the container would mount them."""
    env = {}
    for line in (bundle / "device.env").read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = value.replace("/data/tls/", f"{bundle}/")
    return env


def write_images(folder: Path) -> None:
    import cv2

    folder.mkdir()
    rng = np.random.default_rng(3)
    for index in range(4):
        cv2.imwrite(str(folder / f"item{index}.png"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))


def write_agent_config(path: Path, port: int, http_port: int, images: Path) -> None:
    path.write_text(
        f"""device: {{}}
mqtt:
  host: 127.0.0.1
  port: {port}
  tls: {{}}
http:
  host: 127.0.0.1
  port: {http_port}
  health_stale_s: 30
outbox:
  path: {path.parent / "outbox.db"}
pipelines:
  - name: bench
    source: {{kind: folder, path: {images}, loop: true, interval_s: 0.2}}
    model: {{path: {MODEL}}}
    task: {{kind: classify}}
"""
    )


def start_broker(tmp: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    port, data, log = free_port(), tmp / "mosquitto-data", tmp / "mosquitto.log"
    data.mkdir()
    conf = tmp / "mosquitto.conf"
    conf.write_text(adapt_mosquitto_conf(MOSQUITTO_CONF.read_text(), tmp / "site", data, port, log))
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
    except TimeoutError:
        stop(proc)
        raise AssertionError(f"mosquitto did not start: {log.read_text() if log.exists() else 'no log'}") from None
    return proc, port, log


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("desk")
    site = tmp / "site"
    pki("init", str(site))
    pki("server", str(site), "localhost", "IP:127.0.0.1")
    pki("user", str(site), "operator")
    pki("device", str(site), SITE, DEVICE)
    broker, port, broker_log = start_broker(tmp)
    http_port, bundle = free_port(), site / "devices" / f"{SITE}.{DEVICE}"
    write_images(tmp / "images")
    write_agent_config(tmp / "agent.yaml", port, http_port, tmp / "images")
    agent_log = tmp / "agent.log"
    env = {**os.environ, **device_env(bundle), "PYTHONPATH": str(ROOT)}
    with agent_log.open("wb") as log:
        agent = subprocess.Popen([*agent_command(), "run", str(tmp / "agent.yaml")], stdout=log, stderr=log, env=env)
    operator = (site / "users" / "operator" / "mqtt_password").read_text()
    try:
        yield Stack(site, bundle, port, http_port, operator, agent_log, broker_log, broker.pid)
    finally:
        stop(agent)
        stop(broker)


def test_results_reach_mosquitto_sub_over_tls_with_credentials(stack: Stack) -> None:
    out = stack.sub(f"edge/v1/{SITE}/{DEVICE}/+/result", count=3, wait_s=WAIT_S)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 3, out
    for line in lines:
        topic, _, payload = line.partition(" ")
        body = json.loads(payload)
        assert topic == f"edge/v1/{SITE}/{DEVICE}/classify/result"
        assert body["device_id"] == DEVICE and body["site"] == SITE


def test_healthz_turns_200_once_results_flow(stack: Stack) -> None:
    url = f"http://127.0.0.1:{stack.http_port}/healthz"
    deadline, status = time.monotonic() + WAIT_S, 0
    while time.monotonic() < deadline and status != 200:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                status = response.status
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    assert status == 200, stack.logs()


def test_anonymous_client_is_refused(stack: Stack) -> None:
    cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(stack.port), "--cafile", str(stack.site_dir / "ca" / "ca.crt"),
           "-t", f"edge/v1/{SITE}/{DEVICE}/x", "-m", "hi"]  # fmt: skip
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "not authori" in done.stderr.lower()


def test_plain_tcp_without_tls_is_refused(stack: Stack) -> None:
    cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(stack.port), "-u", "operator", "-P",
           stack.operator_password, "-t", "edge/v1/x", "-m", "hi"]  # fmt: skip
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0


def test_device_cannot_publish_as_another_device(stack: Stack) -> None:
    """The ACL drops the forged message; the device's own marker, sent after it, is the first one seen."""
    name, password = f"{SITE}.{DEVICE}", (stack.bundle / "mqtt_password").read_text()
    received: queue.Queue[str] = queue.Queue()
    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.username_pw_set("operator", stack.operator_password)
    client.tls_set(ca_certs=str(stack.site_dir / "ca" / "ca.crt"))
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_message = lambda _c, _u, msg: received.put(msg.payload.decode())
    client.connect("127.0.0.1", stack.port)
    client.subscribe(f"edge/v1/{SITE}/+/acl-test", qos=1)
    client.loop_start()
    try:
        assert subscribed.wait(30), "the operator's subscription was not acknowledged"
        for target, text in (("other-device", "forged"), (DEVICE, "marker")):
            pub = [*stack._tls("mosquitto_pub", name, password), "-q", "1", "-t", f"edge/v1/{SITE}/{target}/acl-test"]
            subprocess.run([*pub, "-m", text], check=True, capture_output=True, timeout=30)
        assert received.get(timeout=30) == "marker"
    finally:
        client.loop_stop()
        client.disconnect()


def test_live_metrics_pass_promtool_check_metrics(stack: Stack) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run scripts/ensure_promtool.sh"
    stack.sub(f"edge/v1/{SITE}/{DEVICE}/+/result", count=1, wait_s=WAIT_S)  # results flowing: histograms filled
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.http_port}/metrics", timeout=10) as response:
        text = response.read()
    assert b"# TYPE" in text
    done = subprocess.run([promtool, "check", "metrics"], check=False, input=text, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def roi_service_env(stack: Stack, tmp: Path, port: int) -> dict[str, str]:
    """roi-service's environment exactly as deploy/docker-compose.site.yml sets it, with secrets and hosts moved."""
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.site.yml").read_text())
    secrets = {f"/run/secrets/{name}": spec["file"].replace("${SITE_DIR:-./site}", str(stack.site_dir))
               for name, spec in compose["secrets"].items()}  # fmt: skip
    env = {k: secrets.get(str(v), str(v)) for k, v in compose["services"]["roi-service"]["environment"].items()}
    assert env["ROI_MQTT_HOST"] == "broker" and env["ROI_DATABASE_URL"].startswith("sqlite:")
    env.update(ROI_MQTT_HOST="127.0.0.1", ROI_MQTT_PORT=str(stack.port), ROI_DATABASE_URL=f"sqlite:///{tmp}/roi.db")
    return {**os.environ, **env, "ROI_HOST": "127.0.0.1", "ROI_PORT": str(port), "PYTHONPATH": str(ROOT)}


def test_roi_service_with_the_site_compose_settings_ingests_the_results(stack: Stack, tmp_path: Path) -> None:
    pki("user", str(stack.site_dir), "roi-service")
    subprocess.run(["kill", "-HUP", str(stack.broker_pid)], check=True)  # as the guide says: reload passwd
    port = free_port()
    script = Path(sys.executable).parent / "roi-service"
    log = (tmp_path / "roi.log").open("wb")
    service = subprocess.Popen(
        [str(script), "serve"], stdout=log, stderr=log, env=roi_service_env(stack, tmp_path, port)
    )
    try:
        stored, deadline = 0.0, time.monotonic() + WAIT_S
        while stored < 1 and time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    text = response.read().decode()
            except (urllib.error.URLError, OSError):
                continue
            stored = sum(
                float(line.split()[-1]) for line in text.splitlines() if line.startswith("roi_ingest_stored_total")
            )
        assert stored >= 1, (tmp_path / "roi.log").read_text()[-3000:]
    finally:
        stop(service)
        log.close()
