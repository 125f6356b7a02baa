"""Each job's dashboard (Task.dashboard): the demo's line per result and what Home Assistant gets, asked of the job."""

from __future__ import annotations

from edge_agent.demo import summarise
from edge_agent.tasks.dashboard import Dashboard, Place
from edge_agent.tasks.registry import TASKS, task_class


def test_the_demo_line_comes_from_each_jobs_dashboard() -> None:
    zones = [{"zone": "A1", "count": 3, "state": "ok"}, {"zone": "A2", "count": 0, "state": "out_of_stock"}]
    shelf = {"task": "shelf", "zones": zones}
    defect = {"task": "defect", "item_id": "p-7", "passed": False, "score": 1.25}
    sensor = {"task": "sensor_anomaly", "score": 0.5, "threshold": 0.25, "anomalous": True}
    assert summarise({"data": shelf}) == "A1=3, A2=0 (out_of_stock)"
    assert summarise({"data": defect}) == "item p-7 FAIL score 1.250"
    assert summarise({"data": sensor}) == "score 0.500 / 0.250 ANOMALY"
    assert summarise({"data": {"task": "weather", "rain": 1}}) == '{"task": "weather", "rain": 1}'


def test_every_registered_job_has_a_dashboard_and_the_default_shows_nothing_more() -> None:
    boards = {kind: task_class(kind).dashboard for kind in TASKS}
    assert all(isinstance(board, Dashboard) for board in boards.values())
    assert boards["shelf"].snapshots and boards["defect"].snapshots and not boards["sensor_anomaly"].snapshots
    assert boards["sensor_anomaly"].events == ("anomaly_start", "anomaly_end")
    plain = boards["classify"]
    assert type(plain) is Dashboard and plain.events == () and not plain.snapshots
    assert plain.entities(Place("s", "d", "p"), None) == []
