"""roi_service writes the Prometheus device targets from the devices it knows."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import yaml
from sqlalchemy.engine import Engine

from roi_service.db.schema import devices
from roi_service.registry.targets import main, write_targets


def add_device(engine: Engine, site: str, device: str) -> None:
    with engine.begin() as conn:
        conn.execute(devices.insert().values(site=site, device_id=device, state="online", agent_version="0.1.0",
                                             last_seen=datetime.now(timezone.utc), pipelines="[]"))  # fmt: skip


def test_each_known_device_becomes_one_labelled_target(engine: Engine, tmp_path: Path) -> None:
    out = tmp_path / "targets" / "devices.yml"
    assert write_targets(engine, out) == 0
    assert yaml.safe_load(out.read_text()) == []
    add_device(engine, "shop-1", "pi-02")
    add_device(engine, "shop-1", "pi-01")
    assert write_targets(engine, out, "{device}.{site}.example:9100") == 2
    assert yaml.safe_load(out.read_text()) == [
        {"targets": ["pi-01.shop-1.example:9100"], "labels": {"site": "shop-1", "device": "pi-01"}},
        {"targets": ["pi-02.shop-1.example:9100"], "labels": {"site": "shop-1", "device": "pi-02"}},
    ]
    assert [p.name for p in out.parent.iterdir()] == ["devices.yml"]  # no temporary file left behind


def test_command_line_writes_once_with_the_mdns_default(engine: Engine, tmp_path: Path) -> None:
    add_device(engine, "shop-1", "pi-01")
    out = tmp_path / "devices.yml"
    assert main(["--db", str(engine.url), "--out", str(out)]) == 0
    assert yaml.safe_load(out.read_text())[0]["targets"] == ["pi-01.local:9100"]
