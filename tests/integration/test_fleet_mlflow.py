"""An update from a real MLflow model registry to a running agent: `models:/tiny-classifier@production`
resolved over MLflow's REST API (the agent has no mlflow package), swapped without losing a result."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.test_fleet_update import BASE, Bench, write_config
from tests.support.agent import Collector, stop_agent
from tests.support.broker import Broker
from tests.support.fleet import FileServer, model_folder, pack, sha256
from tests.support.mlflow import mlflow_server, register


@pytest.fixture
def mlflow_bench(tmp_path: Path, mosquitto: Broker) -> Iterator[tuple[Bench, str]]:
    with mlflow_server(tmp_path / "mlflow") as url:
        write_config(tmp_path, mosquitto.port, probation_s=3.0)
        config = yaml.safe_load((tmp_path / "agent.yaml").read_text())
        config["fleet"]["mlflow_uri"] = url
        (tmp_path / "agent.yaml").write_text(yaml.safe_dump(config))
        with FileServer() as files:
            watch = Collector(mosquitto.host, mosquitto.port, f"{BASE}/#")
            bench = Bench(tmp_path, mosquitto, files, watch)
            try:
                bench.start()
                yield bench, url
            finally:
                if bench.agent is not None and bench.agent.poll() is None:
                    stop_agent(bench.agent)
                watch.stop()


@pytest.mark.slow  # MLflow's server takes 20 s to over a minute to start on a busy 2-core machine
def test_update_from_mlflow_alias_swaps_without_losing_a_result(mlflow_bench: tuple[Bench, str]) -> None:
    bench, url = mlflow_bench
    archive = pack(model_folder(bench.workdir / "built", "2.0.0"))
    assert register(url, "tiny-classifier", archive, "production") == "1"
    bench.send({"name": "tiny-classifier", "version": "2.0.0", "source": "models:/tiny-classifier@production",
                "sha256": sha256(archive)})  # fmt: skip
    final = bench.final()
    assert final["step"] == "promoted", final["reason"]
    downloading = next(u for u in bench.updates() if u["step"] == "downloading")
    assert downloading["reason"] == "tiny-classifier version 1"  # resolved through the alias
    assert bench.no_gap(), "a result was lost"
    models = [r["model"] for r in sorted(bench.results(), key=lambda r: r["seq"])]
    switch = models.index("tiny-classifier@2.0.0")
    assert switch > 0 and all(m == "tiny-classifier@2.0.0" for m in models[switch:])
    assert bench.running() == "2.0.0"
