"""A SKAB run replayed through `edge-agent run`: anomaly events reach `mosquitto_sub`, /metrics shows window latency.

SKAB (GPL-3.0) is read in place and never copied into the repository: the test runs where the data set
is (EDGE_AGENT_SKAB, ../shared/data/skab beside the checkout, or /work/shared/data/skab) and is skipped
elsewhere. The model is fitted on the file's first 400 rows (normal operation), as in SKAB's protocol,
with `edge-agent fit sensor`.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.agent import agent_config, metrics_port
from tests.support.broker import Broker

ROOT = Path(__file__).resolve().parents[2]
# Where the data set lives: EDGE_AGENT_SKAB, beside the checkout, or the development machines' shared folder.
CANDIDATES = [Path(p) for p in (os.environ.get("EDGE_AGENT_SKAB", ""), ROOT.parent / "shared" / "data" / "skab",
                                "/work/shared/data/skab") if p]  # fmt: skip
SKAB = next((p for p in CANDIDATES if (p / "valve1" / "1.csv").is_file()), CANDIDATES[0])
RUN = SKAB / "valve1" / "1.csv"
CHANNELS = ["Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature", "Thermocouple",
            "Voltage", "Volume Flow RateRMS"]  # fmt: skip

pytestmark = pytest.mark.skipif(not RUN.is_file(), reason=f"SKAB not found at {SKAB} (set EDGE_AGENT_SKAB)")


def fit_on_first_rows(tmp_path: Path, rows: int = 400) -> Path:
    with RUN.open(newline="") as handle:
        table = list(csv.reader(handle, delimiter=";"))
    normal = tmp_path / "normal.csv"
    with normal.open("w", newline="") as handle:
        writer = csv.writer(handle)
        keep = [table[0].index(c) for c in ["datetime", *CHANNELS]]
        for row in table[: rows + 1]:
            writer.writerow([row[i] for i in keep])
    out = tmp_path / "model"
    fit = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "fit", "sensor", "--normal", str(normal), "--out", str(out),
         "--no-tflite"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr[-2000:]
    return out


def test_skab_run_raises_events_for_a_plain_subscriber(mosquitto: Broker, tmp_path: Path) -> None:
    model = fit_on_first_rows(tmp_path)
    source = {"kind": "csv", "path": str(RUN), "timestamp_column": "datetime", "channels": CHANNELS, "speed": 150}
    pipeline = {"name": "pump", "source": source, "model": {"path": str(model)}, "task": {"kind": "sensor_anomaly"}}
    path = agent_config(tmp_path, mosquitto.port, device={"site": "skab", "id": "valve1"}, pipelines=[pipeline])
    sub = subprocess.Popen(
        ["mosquitto_sub", "-h", mosquitto.host, "-p", str(mosquitto.port), "-t",
         "edge/v1/skab/valve1/sensor_anomaly/event", "-W", "60", "-C", "1"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    log = tmp_path / "agent.log"
    with log.open("w") as handle:
        agent = subprocess.Popen(
            [sys.executable, "-m", "edge_agent.cli", "run", str(path)], cwd=tmp_path, stdout=handle, stderr=handle
        )
    try:
        port = metrics_port(log)
        time.sleep(2)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        out, _ = sub.communicate(timeout=70)
        assert agent.wait(timeout=60) == 0, log.read_text()[-2000:]
    finally:
        sub.kill()
        agent.kill()
    event = json.loads(out.splitlines()[0])
    assert event["event"] == "anomaly_start" and event["details"]["top_channels"], event
    inference = [
        line for line in metrics.splitlines()
        if line.startswith("edge_stage_seconds_count") and 'stage="inference"' in line and 'pipeline="pump"' in line
    ]  # fmt: skip
    assert inference and float(inference[0].rsplit(" ", 1)[1]) > 0, "per-window stage latency is exported"
