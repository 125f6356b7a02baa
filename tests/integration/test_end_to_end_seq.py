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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from roi_service.db.engine import make_engine, migrate
from roi_service.db.schema import messages, seq_losses
from tests.support.agent import agent_config, produced_ids, start_agent, stop_agent
from tests.support.broker import Broker, free_port, start_mosquitto
from tests.support.roi import pg_schema_url
from tests.support.roi_proc import log_count, start_roi

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


def run_roi_outage(tmp_path: Path, kind: str, sig: signal.Signals, outage_results: int) -> dict[str, float]:
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
            wait_until(lambda: len(produced(workdirs)) - before >= outage_results, 120, lambda: "results in the outage")
            rate = (len(produced(workdirs)) - before) / (time.monotonic() - started)
            roi = start_roi(url, broker.port, roi_log)
            wait_until(lambda: log_count(roi_log, "to resend") > 0, 60, lambda: "a resend request")
            for agent in agents:
                assert stop_agent(agent, timeout_s=30) == 0
            ids = produced(workdirs)
            wait_until(
                lambda: stored_count(engine, ids) == len(ids), 180, lambda: f"{stored_count(engine, ids)}/{len(ids)}"
            )
            exactly_once(engine, ids)
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
    figures = run_roi_outage(tmp_path, kind, sig, outage_results=30_000)
    print(f"{kind} {sig.name}: {figures}")
