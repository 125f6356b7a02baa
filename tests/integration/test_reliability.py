"""Nothing lost through broker outages, restarts, kills or full outboxes; TLS and credentials enforced.

Each test runs the real agent as a process against a real Mosquitto and checks what a plain
subscriber received against what the agent committed (its jsonl sink writes after each commit).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from tests.support.agent import Watcher, agent_config, metrics_port, produced_ids, start_agent, stop_agent
from tests.support.broker import Broker, free_port, start_mosquitto


def persistent_broker(directory: Path) -> Broker:
    port = free_port()
    conf = (
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        f"persistence true\npersistence_location {directory}/\nautosave_interval 1\n"
    )
    return start_mosquitto(directory, conf, port)


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what} within {timeout_s:.0f}s"
        time.sleep(0.1)


def test_broker_outage_of_30s_loses_nothing_and_marks_replays(tmp_path: Path) -> None:
    broker = persistent_broker(tmp_path / "broker")
    watcher = Watcher(broker.host, broker.port).start()
    config = agent_config(tmp_path, broker.port)
    jsonl = tmp_path / "produced.jsonl"
    agent = start_agent(config)
    try:
        # Live delivery first: everything committed so far has reached the subscriber before the broker goes.
        wait_for(lambda: jsonl.exists() and len(produced_ids(jsonl)) > 500, 120, "500 results produced")
        before = set(produced_ids(jsonl))
        assert watcher.wait_for(before, timeout_s=120), "live results reach the subscriber"
        broker.stop()
        outage_start = time.time()
        # At least 30 s of outage and at least 3,000 results stored meanwhile, however busy the machine is.
        wait_for(
            lambda: time.time() - outage_start >= 30 and len(produced_ids(jsonl)) - len(before) >= 3_000,
            240,
            "30 s and 3,000 results in the outage",
        )
        outage_end = time.time()
        broker.start()
        after = set(produced_ids(jsonl))
        assert watcher.wait_for(after, timeout_s=120), "the backlog is replayed after the outage"
        assert stop_agent(agent) == 0
        produced = produced_ids(jsonl)
        assert watcher.wait_for(set(produced), timeout_s=60), "results were lost"
        received = watcher.ids()
        assert set(received) == set(produced)
        assert len(received) - len(set(received)) <= 5, "duplicates beyond QoS 1 redelivery"
        during = [
            m
            for m in watcher.received
            if outage_start + 1 < datetime.fromisoformat(m["captured_at"]).timestamp() < outage_end - 1
        ]
        assert len(during) > 2_000
        assert all(m["replayed"] for m in during), "results stored during the outage must be marked replayed"
        # What reached the subscriber before the outage went out live (except the first ones, stored before
        # the agent's first connection, which are replays).
        live = [m for m in watcher.received if m["message_id"] in before][-100:]
        assert live and not any(m["replayed"] for m in live)
    finally:
        if agent.poll() is None:
            agent.kill()
        watcher.stop()
        broker.stop()


def test_sigkill_five_times_loses_no_committed_result(tmp_path: Path) -> None:
    broker = persistent_broker(tmp_path / "broker")
    watcher = Watcher(broker.host, broker.port).start()
    config = agent_config(tmp_path, broker.port)
    rng = random.Random(5)
    try:
        for _ in range(5):
            agent = start_agent(config)
            time.sleep(2.5 + rng.random() * 2)
            agent.send_signal(signal.SIGKILL)
            agent.wait()
        agent = start_agent(config)
        time.sleep(4)
        assert stop_agent(agent) == 0
        produced = produced_ids(tmp_path / "produced.jsonl")
        assert len(produced) > 1000
        assert watcher.wait_for(set(produced), timeout_s=60), (
            f"{len(set(produced) - set(watcher.ids()))} committed results never arrived"
        )
        assert any(m["replayed"] for m in watcher.received), "the backlog left by a kill is replayed"
    finally:
        watcher.stop()
        broker.stop()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def scrape(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_outbox_bound_in_a_long_outage_drops_oldest_and_stays_up(tmp_path: Path) -> None:
    dead_port = free_port()  # nothing listens: the broker is down for the whole run
    config = agent_config(tmp_path, dead_port, outbox={"path": "outbox.db", "max_rows": 500})
    agent = start_agent(config)
    try:
        port = metrics_port(tmp_path / "agent.log")
        time.sleep(4)
        rss_early = rss_mb(agent.pid)
        time.sleep(8)
        rss_late = rss_mb(agent.pid)
        assert agent.poll() is None, "the agent stays up"
        backlog = scrape(port, "edge_outbox_backlog")
        dropped = scrape(port, 'edge_outbox_dropped_total{reason="max_rows"}')
        assert backlog <= 500
        assert dropped > 500
        assert rss_late - rss_early < 15, f"memory grew from {rss_early:.0f} to {rss_late:.0f} MB"
    finally:
        stop_agent(agent)
    log = (tmp_path / "agent.log").read_text()
    assert log.count("outbox bound max_rows reached") == 1, "logged once per episode"


def make_certs(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=edge test CA",
    )
    for name in ("server", "client"):
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={'localhost' if name == 'server' else 'dev1'}",
        )
        ext = folder / f"{name}.ext"
        ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "2",
            "-extfile",
            str(ext),
        )
    return {n: folder / n for n in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


def tls_broker(tmp_path: Path) -> tuple[Broker, dict[str, Path]]:
    certs = make_certs(tmp_path / "certs")
    pwfile = tmp_path / "passwd"
    pwfile.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pwfile), "dev1", "s3cret-pass"], check=True)
    os.chmod(pwfile, 0o600)
    port = free_port()
    conf = (
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {pwfile}\n"
        f"cafile {certs['ca.crt']}\ncertfile {certs['server.crt']}\nkeyfile {certs['server.key']}\n"
        "require_certificate true\n"
    )
    return start_mosquitto(tmp_path / "broker", conf, port), certs


def tls_overrides(certs: dict[str, Path], with_password: bool) -> dict[str, object]:
    mqtt: dict[str, object] = {
        "tls": {
            "ca_file": str(certs["ca.crt"]),
            "cert_file": str(certs["client.crt"]),
            "key_file": str(certs["client.key"]),
        },
        "username": "dev1",
    }
    if with_password:
        mqtt["password"] = "s3cret-pass"
    return {"mqtt": mqtt}


def subscribe_tls(broker: Broker, certs: dict[str, Path], seconds: int) -> str:
    out = subprocess.run(
        [
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            str(broker.port),
            "--cafile",
            str(certs["ca.crt"]),
            "--cert",
            str(certs["client.crt"]),
            "--key",
            str(certs["client.key"]),
            "-u",
            "dev1",
            "-P",
            "s3cret-pass",
            "-t",
            "edge/v1/#",
            "-C",
            "5",
            "-W",
            str(seconds),
            "-v",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout


def test_tls_with_credentials_connects(tmp_path: Path) -> None:
    broker, certs = tls_broker(tmp_path)
    config = agent_config(tmp_path, broker.port, **tls_overrides(certs, with_password=True))
    config.write_text(config.read_text().replace("host: 127.0.0.1", "host: localhost"))
    agent = start_agent(config)
    try:
        received = subscribe_tls(broker, certs, 20)
        assert "edge/v1/lab/dev1/classify/result" in received
    finally:
        stop_agent(agent)
        broker.stop()
    assert "connected to broker localhost" in (tmp_path / "agent.log").read_text()


def test_tls_without_password_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    broker, certs = tls_broker(tmp_path)
    config = agent_config(tmp_path, broker.port, **tls_overrides(certs, with_password=False))
    config.write_text(config.read_text().replace("host: 127.0.0.1", "host: localhost"))
    agent = start_agent(config)
    try:
        time.sleep(5)
        assert agent.poll() is None, "a refused device keeps retrying, it does not exit"
    finally:
        stop_agent(agent)
        broker.stop()
    log = (tmp_path / "agent.log").read_text()
    assert "check mqtt.username" in log
    assert "s3cret" not in log
    assert "Traceback" not in log
