"""Snapshots kept beside the database: JPEG only, size-capped, retention by age and total bytes; shown in the
events list and on each event's page, behind the login."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import cv2
import httpx
import numpy as np

from roi_service.api.app import create_app
from roi_service.db.engine import make_engine, migrate
from roi_service.ingest.classify import Incoming
from roi_service.ingest.writer import IngestWriter
from roi_service.metrics import ServiceMetrics
from roi_service.simulate import EPOCH, Device, payload
from roi_service.snapshots import Retention, SnapshotStore, folder_beside
from tests.support.roi import running_app

TOKEN = "t0ken"


def jpeg(seed: int, side: int = 32) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_only_complete_jpegs_under_the_cap_are_kept(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "snaps", Retention(max_bytes=4000))
    small, large = jpeg(1), jpeg(2, side=200)
    assert len(small) < 4000 < len(large)
    assert store.save(sha(small), small) and store.has(sha(small))
    assert not store.save(sha(large), large) and not store.has(sha(large))
    png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    assert not store.save(sha(png), png), "PNG refused"
    assert not store.save(sha(small[:-100]), small[:-100]), "a cut-off JPEG refused"
    assert store.path_for("../../etc/passwd") is None and store.path_for(sha(small).upper()) is None


def test_retention_by_age_then_by_total_bytes(tmp_path: Path) -> None:
    now = [1_000_000.0]
    pictures = [jpeg(i) for i in range(6)]
    cap = sum(len(p) for p in pictures[3:]) + 10  # room for the three newest
    store = SnapshotStore(tmp_path / "snaps", Retention(max_total_bytes=cap, max_age_s=3600), clock=lambda: now[0])
    for i, picture in enumerate(pictures[:3]):
        assert store.save(sha(picture), picture)
        path = store.path_for(sha(picture))
        assert path is not None
        os.utime(path, (now[0] - 7200 + i * 3000, now[0] - 7200 + i * 3000))  # 2 h, 1 h 10 min, 20 min old
    store.save(sha(pictures[3]), pictures[3])
    assert [store.has(sha(p)) for p in pictures[:4]] == [False, False, True, True], "older than an hour: gone"
    for i, picture in enumerate(pictures[3:]):
        path = store.path_for(sha(picture))
        store.save(sha(picture), picture)
        assert path is not None
        os.utime(path, (now[0] - 60 + i, now[0] - 60 + i))
    store.save(sha(pictures[5]), pictures[5])
    assert store.total_bytes() <= cap
    assert not store.has(sha(pictures[2])), "over the byte cap: the oldest goes first"
    assert all(store.has(sha(p)) for p in pictures[3:]), "the newest stay"


def test_folder_beside_the_database() -> None:
    assert folder_beside("sqlite:///var/roi-demo.db") == Path("var/roi-demo.snapshots")
    assert folder_beside("postgresql+psycopg://db/roi") == Path("snapshots")


def test_events_show_their_picture(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'roi.db'}")
    migrate(engine)
    store = SnapshotStore(folder_beside(f"sqlite:///{tmp_path / 'roi.db'}"))
    writer = IngestWriter(engine, ServiceMetrics(), snapshot_store=store)
    device = Device("plant", "cam1", task="defect")
    picture = jpeg(7)
    snap_topic = device.topic("defect/snapshot/abc123")
    topic, event = device.event(EPOCH, "defect")
    event = event.model_copy(update={"snapshot_topic": snap_topic, "details": {"score": 0.91}})
    writer.write([Incoming(snap_topic, picture, False, EPOCH), Incoming(topic, payload(event), False, EPOCH)])
    assert (tmp_path / "roi.snapshots").is_dir()
    app = create_app(engine, TOKEN, snapshots=store, clock=lambda: EPOCH + timedelta(minutes=5), default_period="24h")
    with running_app(app) as url, httpx.Client(base_url=url) as client:
        image_url = f"/snapshots/{sha(picture)}.jpg"
        assert client.get(image_url).status_code == 401, "pictures are behind the login"
        client.post("/login", content=f"token={TOKEN}", headers={"Content-Type": "application/x-www-form-urlencoded"})
        dashboard = client.get("/").text
        assert f'src="{image_url}"' in dashboard and f'href="/events/{event.message_id}"' in dashboard
        page = client.get(f"/events/{event.message_id}")
        assert page.status_code == 200 and 'id="snapshot"' in page.text and "heat map" in page.text
        assert "0.91" in page.text and 'data-verdict="false_alarm"' in page.text
        served = client.get(image_url)
        assert served.headers["content-type"] == "image/jpeg" and served.content == picture
        assert client.get(f"/snapshots/{'0' * 64}.jpg").status_code == 404
        assert client.get("/events/nope").status_code == 404
    engine.dispose()
