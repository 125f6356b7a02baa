"""The demo's replays: the sensor CSV re-timestamped to end when its replay ends (so it falls in the
dashboard's periods), image folders looped so `--seconds 0` runs until Ctrl-C."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import Any

from edge_agent.config_loader import load_config
from edge_agent.demo import DEFAULT_CONFIG, prepare_replays, retimestamp_csv
from edge_agent.tasks.sensor.dataio import parse_time


def test_sensor_csv_ends_when_its_replay_ends(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("timestamp,v\n2026-01-05T08:00:00Z,1\n2026-01-05T08:01:00Z,2\n2026-01-05T08:02:00Z,3\n")
    out = retimestamp_csv(source, tmp_path / "out.csv", "timestamp", speed=60.0, start=1_800_000_000.0)
    rows = list(csv.DictReader(out.read_text().splitlines()))
    stamps = [parse_time(r["timestamp"]) for r in rows]
    assert stamps[-1] == 1_800_000_000.0 + 120 / 60, "two recorded minutes at 60x end two seconds after the start"
    assert [b - a for a, b in itertools.pairwise(stamps)] == [60.0, 60.0], "spacing kept"
    assert [r["v"] for r in rows] == ["1", "2", "3"]


def test_demo_replays_are_prepared(tmp_path: Path) -> None:
    config = load_config(DEFAULT_CONFIG)
    prepare_replays(config, tmp_path, now=1_800_000_000.0)
    sources: dict[str, Any] = {p.name: p.source for p in config.pipelines}
    assert sources["pump"].path.parent == tmp_path
    assert sources["line1"].loop and sources["aisle3"].loop
    assert config.outbox.path == tmp_path / "demo-outbox.db", "no backlog of an earlier demo"
    last = sources["pump"].path.read_text().splitlines()[-1].split(",")[0]
    assert parse_time(last) <= 1_800_000_000.0 + 120
