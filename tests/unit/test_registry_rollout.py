"""The rollout engine's decisions, without a broker: stable stages of 20/50/100 %, advance, stop, revert."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from roi_service.registry.rollout import RolloutEngine, stage_order, stage_size
from roi_service.registry.store import ModelRegistry, RegistryError
from tests.support.fleet import model_folder, pack


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    reg = ModelRegistry(tmp_path / "registry")
    for version in ("1.0.0", "2.0.0"):
        reg.add(pack(model_folder(tmp_path / "built", version)))
    return reg


def engine(registry: ModelRegistry) -> tuple[RolloutEngine, list[tuple[str, str]]]:
    sent: list[tuple[str, str]] = []

    def send(device: str, args: dict[str, Any]) -> None:
        sent.append((device, args["version"]))

    return RolloutEngine(registry, send, lambda n, v: f"https://roi/registry/archive/{n}/{v}.tar.gz"), sent


def promoted(version: str) -> dict[str, Any]:
    return {"name": "tiny-classifier", "version": version, "step": "promoted"}


def test_stages_are_20_50_100_percent_in_a_stable_order() -> None:
    devices = [f"shop/cam-{i}" for i in range(10)]
    assert [stage_size(10, s) for s in (0.2, 0.5, 1.0)] == [2, 5, 10]
    assert stage_size(3, 0.2) == 1 and stage_size(1, 0.5) == 1
    assert stage_order(devices) == stage_order(list(reversed(devices)))  # by id, not by the order given
    assert stage_order([*devices, "shop/cam-new"])[:2] != [] and set(stage_order(devices)) == set(devices)


def test_a_stage_advances_only_when_all_its_devices_passed(registry: ModelRegistry) -> None:
    eng, sent = engine(registry)
    devices = [f"shop/cam-{i}" for i in range(10)]
    rollout = eng.start("tiny-classifier", "2.0.0", devices, rollback_to="1.0.0")
    first = [d.device for d in rollout.devices if d.stage == 0]
    assert len(first) == 2 and sent == [(d, "2.0.0") for d in first]
    eng.on_update(first[0], promoted("2.0.0"))
    assert rollout.stage == 0 and len(sent) == 2
    eng.on_update(first[1], promoted("2.0.0"))
    assert rollout.stage == 1 and len(sent) == 5
    again = RolloutEngine(registry, lambda d, a: None, lambda n, v: "")  # state survives a restart
    assert again.rollouts[0].stage == 1 and [d.status for d in again.rollouts[0].devices].count("promoted") == 2


def test_one_failure_stops_the_rollout_and_reverts_the_moved_devices(registry: ModelRegistry) -> None:
    eng, sent = engine(registry)
    rollout = eng.start("tiny-classifier", "2.0.0", [f"shop/cam-{i}" for i in range(10)], rollback_to="1.0.0")
    a, b = (d.device for d in rollout.devices if d.stage == 0)
    eng.on_update(a, promoted("2.0.0"))
    eng.on_update(b, {"name": "tiny-classifier", "version": "2.0.0", "step": "rolled_back", "reason": "error rate"})
    assert rollout.state == "stopped" and b in rollout.reason and "error rate" in rollout.reason
    assert sent[-1] == (a, "1.0.0") and len(sent) == 3  # nobody else was sent 2.0.0
    eng.on_update(a, promoted("1.0.0"))
    assert {d.device: d.status for d in rollout.devices if d.stage == 0} == {a: "reverted", b: "rolled_back"}


def test_registry_refuses_duplicates_unknown_versions_and_non_archives(registry: ModelRegistry, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="already registered"):
        registry.add(pack(model_folder(tmp_path / "again", "2.0.0")))
    with pytest.raises(RegistryError, match="not a model archive"):
        registry.add(b"not gzip")
    eng, _ = engine(registry)
    with pytest.raises(RegistryError, match=r"3\.0\.0 is not in the registry"):
        eng.start("tiny-classifier", "3.0.0", ["shop/cam-1"])
    eng.start("tiny-classifier", "2.0.0", ["shop/cam-1"])
    with pytest.raises(RegistryError, match="rollout of tiny-classifier is running"):
        eng.start("tiny-classifier", "2.0.0", ["shop/cam-2"])


def test_registry_api_uploads_lists_serves_and_guards(tmp_path: Path) -> None:
    import httpx

    from roi_service.api.app import create_app
    from roi_service.db.engine import make_engine, migrate
    from roi_service.registry.service import RegistryService
    from tests.support.roi import running_app

    engine_ = make_engine(f"sqlite:///{tmp_path / 'roi.db'}")
    migrate(engine_)
    svc = RegistryService(tmp_path / "reg", "https://roi.example", None)
    with running_app(create_app(engine_, "tok", registry=svc)) as url, httpx.Client(base_url=url) as client:
        check_registry_api(client, svc, tmp_path)


def check_registry_api(client: Any, svc: Any, tmp_path: Path) -> None:
    auth = {"Authorization": "Bearer tok"}
    archive = pack(model_folder(tmp_path / "built", "1.0.0"))
    assert client.post("/api/registry/models", content=archive).status_code == 401
    created = client.post("/api/registry/models", content=archive, headers=auth)
    assert created.status_code == 201 and created.json()["version"] == "1.0.0"
    assert client.post("/api/registry/models", content=b"junk", headers=auth).status_code == 400
    assert [v["version"] for v in client.get("/api/registry/models", headers=auth).json()] == ["1.0.0"]
    assert client.get("/registry/archive/tiny-classifier/1.0.0.tar.gz").content == archive
    assert svc.archive_url("tiny-classifier", "1.0.0") == "https://roi.example/registry/archive/tiny-classifier/1.0.0.tar.gz"
    refused = client.post("/api/registry/rollouts", json={"name": "tiny-classifier", "version": "1.0.0"}, headers=auth)
    assert refused.status_code == 503 and "ROI_MQTT_HOST" in refused.json()["detail"]
    svc.on_model("shop/cam-1", {"models": [{"pipeline": "p", "name": "tiny-classifier", "version": "1.0.0"}]})
    page = client.get("/registry", headers=auth)
    assert page.status_code == 200 and "<td>shop/cam-1</td>" in page.text and "<td>1.0.0</td>" in page.text
    assert '<a href="/">Dashboard</a>' in page.text
    assert client.get("/registry").status_code == 401
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert client.post("/login", content="token=tok", headers=form, follow_redirects=False).status_code == 303
    assert '<a href="/registry" id="fleet-models">Fleet models</a>' in client.get("/").text
