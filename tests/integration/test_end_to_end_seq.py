"""Nothing lost between the camera and the cloud database, whatever the broker does.

Real agents (the tiny classifier as fast as it runs), a real Mosquitto with a per-client queue limit of 100
and persistence off, and `roi-service ingest` as a process on SQLite or PostgreSQL. The broker drops what
roi_service's session cannot queue; roi_service finds the seq gaps, asks the devices (`cmd/resend`), and
they replay from their delivered archive. The oracle: every message_id the agents committed (their jsonl
sink writes after the outbox commit) is in the database exactly once.
"""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from roi_service.db.engine import make_engine, migrate
from roi_service.db.schema import messages, seq_losses, status_events
from tests.integration.test_reliability import scrape
from tests.support.agent import agent_config, metrics_port, produced_ids, start_agent, stop_agent
from tests.support.broker import Broker, free_port, start_mosquitto
from tests.support.roi import pg_schema_url
from tests.support.roi_proc import log_count, start_roi
from tests.support.tcpproxy import TcpProxy

QUEUE_LIMIT = 100


def limited_broker(directory: Path, port: int | None = None) -> Broker:
    port = port or free_port()
    conf = f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages {QUEUE_LIMIT}\n"
    return start_mosquitto(directory, conf, port)


@contextmanager
def database(kind: str, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """A migrated database and the URL a roi_service process reaches it by."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'roi.db'}"
        engine = make_engine(url)
        migrate(engine)
        yield url, engine
        engine.dispose()
        return
    with pg_schema_url() as url:
        engine = make_engine(url)
        migrate(engine)
        try:
            yield url, engine
        finally:
            engine.dispose()


def fast_agent(workdir: Path, port: int, device: str, **overrides: object) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    config = agent_config(workdir, port, device={"site": "lab", "id": device}, **overrides)
    text_ = config.read_text().replace("interval_s: 0.005", "interval_s: 0.0")
    config.write_text(text_)
    return config


def wait_until(check: Callable[[], bool], timeout_s: float, what: Callable[[], object] = lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not reached within {timeout_s:.0f}s: {what()}")


def stored_count(engine: Engine, ids: set[str]) -> int:
    with engine.connect() as conn:
        present = set(conn.execute(select(messages.c.message_id)).scalars())
    return len(ids & present)


def exactly_once(engine: Engine, ids: set[str]) -> None:
    with engine.connect() as conn:
        rows = list(conn.execute(select(messages.c.message_id)).scalars())
    assert len(rows) == len(set(rows)), "a message_id stored twice"
    missing = ids - set(rows)
    assert not missing, f"{len(missing)} of {len(ids)} committed results never reached the database"


def produced(workdirs: list[Path]) -> set[str]:
    return {i for w in workdirs if (w / "produced.jsonl").exists() for i in produced_ids(w / "produced.jsonl")}


def all_stored(engine: Engine, ids: set[str], timeout_s: float, stall_s: float = 60.0) -> bool:
    """Whether every id reaches the database: waits while the stored count still grows (a backlog of 50,000 results
    takes minutes on a busy 2-core machine), gives up after `stall_s` without progress or after `timeout_s`. Polls
    once a second: each poll reads every stored id, which would slow the ingest it waits for."""
    started = time.monotonic()
    best, progressed = -1, started
    while True:
        count, now = stored_count(engine, ids), time.monotonic()
        if count == len(ids):
            return True
        if count > best:
            best, progressed = count, now
        if now - progressed > stall_s or now - started > timeout_s:
            return False
        time.sleep(1.0)


def settle(engine: Engine, workdirs: list[Path], agents: list[subprocess.Popen[bytes]]) -> set[str]:
    """Stop the agents once the database has caught up with them; returns what they committed, all of it stored.

    A replay can itself overflow the broker's queue limit; roi_service asks again until the gaps close. A device
    stopped before its last messages were replayed is started again: it comes back online, is asked, replays."""
    snapshot = produced(workdirs)
    assert all_stored(engine, snapshot, 900), f"{len(snapshot) - stored_count(engine, snapshot)} never stored"
    for agent in agents:
        assert stop_agent(agent, timeout_s=30) == 0
    ids = produced(workdirs)
    if not all_stored(engine, ids, 20):
        again = [start_agent(w / "agent.yaml") for w in workdirs]
        complete = all_stored(engine, ids, 900)
        for agent in again:
            stop_agent(agent, timeout_s=30)
        assert complete, f"{len(ids) - stored_count(engine, ids)} of {len(ids)} committed results never stored"
    exactly_once(engine, ids)
    return ids


def run_roi_outage(
    tmp_path: Path, kind: str, sig: signal.Signals, outage_results: int, outage_s: float = 0.0
) -> dict[str, float]:
    broker = limited_broker(tmp_path / "broker")
    roi_log = tmp_path / "roi.log"
    workdirs = [tmp_path / "dev1", tmp_path / "dev2"]
    agents: list[subprocess.Popen[bytes]] = []
    with database(kind, tmp_path) as (url, engine):
        roi = start_roi(url, broker.port, roi_log)
        try:
            agents = [start_agent(fast_agent(w, broker.port, w.name)) for w in workdirs]
            wait_until(lambda: stored_count(engine, produced(workdirs)) > 1000, 60, lambda: "first results stored")
            roi.send_signal(sig)
            roi.wait(timeout=15)
            before = len(produced(workdirs))
            started = time.monotonic()
            wait_until(
                lambda: len(produced(workdirs)) - before >= outage_results and time.monotonic() - started >= outage_s,
                outage_s + 180,
                lambda: "results in the outage",
            )
            rate = (len(produced(workdirs)) - before) / (time.monotonic() - started)
            roi = start_roi(url, broker.port, roi_log)
            wait_until(lambda: log_count(roi_log, "to resend") > 0, 60, lambda: "a resend request")
            ids = settle(engine, workdirs, agents)
            with engine.connect() as conn:
                lost = conn.execute(select(func.coalesce(func.sum(seq_losses.c.count), 0))).scalar_one()
            assert lost == 0, "the archive held everything the broker dropped"
        finally:
            for agent in agents:
                if agent.poll() is None:
                    agent.kill()
            roi.send_signal(signal.SIGTERM)
            roi.wait(timeout=15)
            broker.stop()
    dropped = (tmp_path / "broker" / "mosquitto.log").read_text(errors="replace").count("dropped")
    assert dropped > 0, "the broker's queue limit dropped messages (the case this test is about)"
    return {"results_per_s": rate, "results": len(ids)}


@pytest.mark.parametrize(("kind", "sig"), [("sqlite", signal.SIGKILL), ("postgresql", signal.SIGTERM)])
def test_roi_outage_with_a_small_broker_queue_loses_nothing(tmp_path: Path, kind: str, sig: signal.Signals) -> None:
    run_roi_outage(tmp_path, kind, sig, outage_results=3_000)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_roi_down_60s_at_full_rate_loses_nothing(tmp_path: Path, kind: str, sig: signal.Signals) -> None:
    figures = run_roi_outage(tmp_path, kind, sig, outage_results=30_000, outage_s=60)
    print(f"{kind} {sig.name}: {figures}")


def test_broker_restarted_without_persistence_while_devices_hold_a_backlog_loses_nothing(tmp_path: Path) -> None:
    """The device reconnects first and unloads its backlog into a broker that has no session for roi_service."""
    broker = limited_broker(tmp_path / "broker")
    roi_log = tmp_path / "roi.log"
    workdir = tmp_path / "dev1"
    agent = start_agent(fast_agent(workdir, broker.port, "dev1"))
    with database("sqlite", tmp_path) as (url, engine):
        roi = start_roi(url, broker.port, roi_log)
        try:
            port = metrics_port(workdir / "agent.log")
            wait_until(lambda: stored_count(engine, produced([workdir])) > 500, 60)
            broker.stop()
            roi.send_signal(signal.SIGTERM)  # roi_service comes back only after the device has reconnected
            roi.wait(timeout=15)
            before = len(produced([workdir]))
            wait_until(lambda: len(produced([workdir])) - before > 2_000, 120, lambda: "a backlog")
            broker.start()
            wait_until(lambda: scrape(port, "edge_outbox_backlog") < 50, 120, lambda: "the backlog sent")
            roi = start_roi(url, broker.port, roi_log)
            wait_until(lambda: log_count(roi_log, "to resend") > 0, 60, lambda: "a resend request")
            settle(engine, [workdir], [agent])
        finally:
            if agent.poll() is None:
                agent.kill()
            roi.send_signal(signal.SIGTERM)
            roi.wait(timeout=15)
            broker.stop()


def test_two_network_cuts_show_the_device_offline_twice(tmp_path: Path) -> None:
    broker = start_mosquitto(tmp_path / "broker")
    proxy = TcpProxy(broker.port).start()
    roi_log = tmp_path / "roi.log"
    workdir = tmp_path / "dev1"
    workdir.mkdir()
    config = agent_config(workdir, proxy.port, mqtt={"port": proxy.port, "keepalive_s": 5})
    with database("sqlite", tmp_path) as (url, engine):
        roi = start_roi(url, broker.port, roi_log)
        agent = start_agent(config)
        try:
            for cut in (1, 2):
                wait_until(lambda n=cut: transitions(engine).count("online") >= n, 60, lambda: states(engine))
                proxy.cut()
                wait_until(lambda n=cut: transitions(engine).count("offline") >= n, 60, lambda: states(engine))
                proxy.restore()
            wait_until(lambda: transitions(engine).count("online") >= 3, 60, lambda: states(engine))
        finally:
            stop_agent(agent, timeout_s=30)
            roi.send_signal(signal.SIGTERM)
            roi.wait(timeout=15)
            proxy.stop()
            broker.stop()
    seen = transitions(engine)
    assert seen[:5] == ["online", "offline", "online", "offline", "online"], "each cut seen as its own offline"


def transitions(engine: Engine) -> list[str]:
    """States in order, repeats collapsed (the device republishes its status when a pipeline's state changes)."""
    all_states = states(engine)
    return [s for i, s in enumerate(all_states) if i == 0 or s != all_states[i - 1]]


def states(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(status_events.c.state).order_by(status_events.c.at)).scalars())


@contextmanager
def small_disk(path: Path, size_kb: int) -> Iterator[Path]:
    """A size-limited tmpfs (needs root); the test is skipped where it cannot be mounted."""
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)], check=False, capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Fill the file system to the last byte."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
                out.flush()
        except OSError:
            pass
    return filler


def healthz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def run_disk_full(tmp_path: Path, full_s: float, buffer_bytes: int) -> tuple[Engine, set[str], int, int]:
    broker = start_mosquitto(tmp_path / "broker")
    roi_log = tmp_path / "roi.log"
    workdir = tmp_path / "dev1"
    with small_disk(tmp_path / "disk", 128 * 1024) as disk, database("sqlite", tmp_path) as (url, engine):
        outbox = {"path": str(disk / "outbox.db"), "memory_buffer_bytes": buffer_bytes, "archive_max_bytes": 16 << 20}
        roi = start_roi(url, broker.port, roi_log)
        config = fast_agent(workdir, broker.port, "dev1", outbox=outbox)
        # At most 1,000 results/s, so a buffer size means the same on a fast and a slow machine (full rate on this
        # one ran 2,000-3,500/s depending on the preprocessing's speed, and 16 MB held 6 s of it or not).
        config.write_text(config.read_text().replace("interval_s: 0.0", "interval_s: 0.001"))
        agent = start_agent(config)
        try:
            port = metrics_port(workdir / "agent.log")
            wait_until(lambda: stored_count(engine, produced([workdir])) > 500, 60)
            filler = fill(disk)
            wait_until(lambda: "cannot write" in healthz(port)[1], 30, lambda: healthz(port))
            assert healthz(port)[0] == 503
            deadline = time.monotonic() + full_s
            wait_until(lambda: time.monotonic() > deadline and healthz(port)[0] == 503, full_s + 30)
            filler.unlink()
            wait_until(lambda: healthz(port)[0] == 200, 60, lambda: healthz(port))
            dropped = int(scrape(port, 'edge_outbox_dropped_total{reason="disk_full"}'))
            # The dropped seqs are gaps to roi_service; the device answers that it never held them.
            wait_until(lambda: lost(engine) >= dropped, 120, lambda: (lost(engine), dropped))
            if dropped:
                assert stop_agent(agent, timeout_s=30) == 0
                ids = produced([workdir])
            else:
                ids = settle(engine, [workdir], [agent])
        finally:
            if agent.poll() is None:
                agent.kill()
            roi.send_signal(signal.SIGTERM)
            roi.wait(timeout=15)
            broker.stop()
        return engine, ids, dropped, lost(engine)


def lost(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(seq_losses.c.count), 0))).scalar_one())


def test_a_full_outbox_disk_loses_nothing_while_the_memory_buffer_suffices(tmp_path: Path) -> None:
    engine, ids, dropped, lost_seqs = run_disk_full(tmp_path, full_s=6, buffer_bytes=16 << 20)
    assert dropped == 0 and lost_seqs == 0
    exactly_once(engine, ids)


def test_a_full_outbox_disk_counts_exactly_what_overflows_the_buffer(tmp_path: Path) -> None:
    engine, ids, dropped, lost_seqs = run_disk_full(tmp_path, full_s=6, buffer_bytes=20_000)
    assert dropped > 0, "the small buffer overflowed"
    assert lost_seqs == dropped, "roi_service recorded as lost exactly the messages the device counted as dropped"
    assert len(ids) - stored_count(engine, ids) <= dropped


@pytest.mark.slow
def test_a_full_outbox_disk_for_30s_loses_nothing_while_the_buffer_suffices(tmp_path: Path) -> None:
    engine, ids, dropped, lost_seqs = run_disk_full(tmp_path, full_s=30, buffer_bytes=64 << 20)
    assert dropped == 0 and lost_seqs == 0
    exactly_once(engine, ids)
