"""The owner's forms: costs and savings per use case and the readiness matrix, validated field by field, and
every change in the audit with who made it and what changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from roi_service.api.app import create_app
from roi_service.api.store import latest_readiness, list_use_cases
from roi_service.db.engine import make_engine, migrate
from roi_service.simulate import EPOCH
from tests.support.roi import running_app

TOKEN = "forms-token"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CASE = {"name": "Line 1", "task": "defect", "hourly_cost": "30", "escaped_defect_cost": "150", "hardware_cost": "900"}
SCORES = {
    "data_availability": "4",
    "process_standardisation": "3",
    "technical_infrastructure": "4",
    "budget_commitment": "3",
    "organisational_readiness": "2",
}


@pytest.fixture
def session(tmp_path: Path) -> Iterator[tuple[httpx.Client, object]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'roi.db'}")
    migrate(engine)
    with running_app(create_app(engine, TOKEN, clock=lambda: EPOCH)) as url, httpx.Client(base_url=url) as client:
        client.post("/login", content=f"token={TOKEN}", headers=FORM)
        yield client, engine
    engine.dispose()


def post(client: httpx.Client, path: str, body: dict[str, str]) -> httpx.Response:
    return client.post(path, content=urlencode(body), headers=FORM, follow_redirects=False)


def test_use_case_form_validates_and_audits(session: tuple[httpx.Client, object]) -> None:
    client, engine = session
    form = client.get("/business").text
    assert 'name="escaped_defect_cost"' in form and 'name="who"' in form and "No change recorded yet" in form
    bad = post(client, "/business/use-case", {**CASE, "hourly_cost": "-3", "who": "Ana"})
    assert bad.status_code == 422 and "hourly_cost: Input should be greater than or equal to 0" in bad.text
    assert 'value="-3"' in bad.text, "the form keeps what was typed"
    unsigned = post(client, "/business/use-case", CASE)
    assert unsigned.status_code == 422 and "sign the change with your name" in unsigned.text
    assert list_use_cases(engine) == []  # type: ignore[arg-type]
    assert post(client, "/business/use-case", {**CASE, "who": "Ana"}).status_code == 303
    assert post(client, "/business/use-case", {**CASE, "hourly_cost": "35", "who": "Ben"}).status_code == 303
    (saved,) = list_use_cases(engine)  # type: ignore[arg-type]
    assert saved.hourly_cost == 35 and saved.escaped_defect_cost == 150
    audit = client.get("/business").text.split('id="audit"')[1]
    assert "Ben" in audit and "hourly_cost: 30.0 → 35.0" in audit
    assert "Ana" in audit and "created" in audit
    api = client.put(
        "/api/v1/use-cases/Line 1", json={**CASE, "hourly_cost": 40}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert api.status_code == 200
    assert "API (bearer token)" in client.get("/business").text


def test_readiness_form_validates_and_audits(session: tuple[httpx.Client, object]) -> None:
    client, engine = session
    bad = post(client, "/business/readiness", {**SCORES, "data_availability": "6", "who": "Ana", "name": "Plant A"})
    assert bad.status_code == 422 and "data_availability: Input should be less than or equal to 5" in bad.text
    assert latest_readiness(engine) is None  # type: ignore[arg-type]
    assert post(client, "/business/readiness", {**SCORES, "who": "Ana", "name": "Plant A"}).status_code == 303
    stored = latest_readiness(engine)  # type: ignore[arg-type]
    assert stored is not None and stored[0] == "Plant A" and stored[1].organisational_readiness == 2
    assert post(client, "/business/readiness", {**SCORES, "budget_commitment": "5", "who": "Ben"}).status_code == 303
    audit = client.get("/business").text.split('id="audit"')[1]
    assert "budget_commitment: 3 → 5" in audit and "Ben" in audit
    assert "/ 60" in client.get("/").text, "the dashboard shows the new score"


def test_forms_need_a_session(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'roi.db'}")
    migrate(engine)
    with running_app(create_app(engine, TOKEN)) as url, httpx.Client(base_url=url) as client:
        assert client.get("/business", follow_redirects=False).status_code == 303
        assert post(client, "/business/use-case", {**CASE, "who": "Eve"}).status_code == 303
        assert list_use_cases(engine) == []
    engine.dispose()
