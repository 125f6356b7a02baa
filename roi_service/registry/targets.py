"""Prometheus file-based service discovery written from roi_service's devices table.

Devices register themselves by talking: every device that published a status or result is in
`devices`, and appears in the targets file (one group per device, `site` and `device` labels).
Its scrape address comes from a template, `{device}.local:9100` by default (the mDNS name balena
and Raspberry Pi OS announce); sites with DNS names or fixed addresses pass their own.

    python -m roi_service.registry.targets --db sqlite:////data/roi.db \\
        --out /targets/devices.yml --every 60
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, select

from roi_service.db.engine import make_engine
from roi_service.db.schema import devices

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "{device}.local:9100"


def target_groups(engine: Engine, template: str = DEFAULT_TEMPLATE) -> list[dict[str, Any]]:
    """One file_sd group per known device, sorted by site and device."""
    query = select(devices.c.site, devices.c.device_id).order_by(devices.c.site, devices.c.device_id)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        {"targets": [template.format(site=site, device=device)], "labels": {"site": site, "device": device}}
        for site, device in rows
    ]


def write_targets(engine: Engine, path: Path, template: str = DEFAULT_TEMPLATE) -> int:
    """Write the targets file atomically (Prometheus never reads half a file); returns the group count."""
    groups = target_groups(engine, template)
    text = "# Written by roi_service from the devices it knows; edits are overwritten.\n"
    text += yaml.safe_dump(groups, sort_keys=False) if groups else "[]\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".devices-", suffix=".yml")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return len(groups)


def run_forever(engine: Engine, path: Path, template: str, every_s: float, stop: threading.Event) -> None:
    while not stop.is_set():
        count = write_targets(engine, path, template)
        logger.info("wrote %d device target(s) to %s", count, path)
        stop.wait(every_s)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write Prometheus file_sd targets from roi_service's devices.")
    parser.add_argument("--db", required=True, help="roi_service database URL")
    parser.add_argument("--out", type=Path, required=True, help="targets file Prometheus reads")
    parser.add_argument("--template", default=DEFAULT_TEMPLATE, help="scrape address; {site} and {device} expand")
    parser.add_argument("--every", type=float, default=0.0, help="rewrite every N seconds (0: once)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = make_engine(args.db)
    if args.every > 0:
        run_forever(engine, args.out, args.template, args.every, threading.Event())
    else:
        write_targets(engine, args.out, args.template)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
