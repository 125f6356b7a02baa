"""docs/roi.md's worked example, computed the way the dashboard computes it: a week of the appliance's three
jobs (roi_service.simulate.worked_example_week) with the owner's figures of examples/demo_business.json.
If a formula changes, this test and the document change together."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from roi_service.api.store import FeedbackIn, save_feedback
from roi_service.calc.roi import UseCaseParams
from roi_service.db.engine import make_engine, migrate
from roi_service.ingest.classify import Incoming
from roi_service.ingest.writer import IngestWriter
from roi_service.measure import evaluate
from roi_service.metrics import ServiceMetrics
from roi_service.overview import roi_row
from roi_service.simulate import EPOCH, worked_example_week

BUSINESS = json.loads((Path(__file__).resolve().parents[2] / "examples" / "demo_business.json").read_text())
END = EPOCH + timedelta(days=7, minutes=1)


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('week') / 'roi.db'}")
    migrate(engine)
    messages, verdicts = worked_example_week()
    writer = IngestWriter(engine, ServiceMetrics())
    for i in range(0, len(messages), 5000):
        writer.write([Incoming(topic, body, False, at) for topic, body, at in messages[i : i + 5000]])
    for message_id, verdict in verdicts.items():
        save_feedback(engine, message_id, FeedbackIn(verdict=verdict), EPOCH)  # type: ignore[arg-type]
    yield engine
    engine.dispose()


def row(engine: Engine, name: str, period: timedelta = timedelta(days=30)) -> dict[str, Any]:
    params = next(UseCaseParams(**u) for u in BUSINESS["use_cases"] if u["name"] == name)
    return roi_row(evaluate(engine, params, END, period))


def test_line_camera_against_manual_inspection(week: Engine) -> None:
    r = row(week, "Line 1 camera inspection")
    assert r["sample"] == "10,081 items over 7.0 days of data" and r["needs_more_days"] is None
    assert r["catches_sample"] == 201 and r["catches_sample_band"] == [174.2, 230.8]
    assert (r["benefit_month_eur"], r["savings_month_eur"]) == (7059.99, 6949.6)
    assert r["savings_month_band_eur"] == [6327.74, 7640.56]
    assert (r["payback_months"], r["first_year_roi_pct"]) == (0.56, 2038.3)
    assert (r["inferences_month"], r["cloud_cost_month_eur"], r["edge_after_year1_month_eur"]) == (
        43834.35,
        43.83,
        17.63,
    )
    assert r["edge_vs_cloud_after_year1"] == 0.4022 and r["edge_target_met"] is True


def test_shelf_counting_against_stock_outs(week: Engine) -> None:
    r = row(week, "Aisle 3 shelf counting")
    assert r["catches_sample"] == 21 and r["catches_sample_band"] == [13.0, 32.1]
    assert (r["savings_month_eur"], r["payback_months"]) == (2539.31, 1.02)
    assert r["savings_month_band_eur"] == [1704.45, 3687.24]
    assert r["edge_vs_cloud_after_year1"] == 1.3901 and r["edge_target_met"] is False


def test_sensors_against_downtime_and_the_width_of_two_events(week: Engine) -> None:
    r = row(week, "Pump 7 vibration watch")
    assert r["catches_sample"] == 2 and r["catches_sample_band"] == [0.2, 7.2]
    assert (r["savings_month_eur"], r["payback_months"]) == (4336.9, 0.67)
    assert r["savings_month_band_eur"] == [-11.32, 15207.43], "two anomalies a week: the band spans zero"


def test_the_seven_day_view_of_the_same_week_is_just_short_of_the_minimum(week: Engine) -> None:
    r = row(week, "Line 1 camera inspection", timedelta(days=7))  # the first minute falls outside the window
    assert r["needs_more_days"] == 0.1 and r["savings_month_eur"] is None
