"""The spectral-residual test through `fit sensor` and the device's task on a one-channel stream: off unless
asked for (models fitted without it load as before), its calibrated meaning on normal data, and a spike
inside the normal range caught at once (the window model sees a spike this large by itself too)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.runtime.manifest import load_manifest
from edge_agent.tasks.sensor import fit
from edge_agent.tasks.sensor.config import SensorAnomalyTaskConfig
from edge_agent.tasks.sensor.dataio import SensorTable, write_sensor_csv
from edge_agent.tasks.sensor.replay import make_task, replay

CONFIG = SensorAnomalyTaskConfig(kind="sensor_anomaly", batch_size=256)
START = 1_767_600_000.0
PERIOD = 300.0


def cycling(rows: int, seed: int) -> SensorTable:
    """One channel: a daily cycle of five noise spreads plus AR(1) noise, at 5-minute spacing."""
    rng = np.random.default_rng(seed)
    noise = np.zeros(rows)
    for i in range(1, rows):
        noise[i] = 0.7 * noise[i - 1] + rng.normal()
    values = 50.0 + 5.0 * np.sin(2 * np.pi * np.arange(rows) * PERIOD / 86_400.0) + noise
    return SensorTable(START + PERIOD * np.arange(rows), values[:, None], ["load"])


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("spectral")
    csv = write_sensor_csv(root / "normal.csv", cycling(864, seed=1))
    out = {}
    variants = {
        "default": [],
        "on": ["--spectral-test", "on"],
        "alone": ["--spectral-test", "on", "--recent-test", "off"],
    }
    for name, extra in variants.items():
        out[name] = root / name
        assert fit.main(["--normal", str(csv), "--out", str(out[name]), *extra]) == 0
    return out


def test_off_by_default_and_recorded_when_asked_for(models: dict[str, Path]) -> None:
    default, on = (load_manifest(models[k]).params for k in ("default", "on"))
    assert "spectral" not in default and "spectral_loc" not in default["calibration"]
    assert default["fit"]["spectral_test"] is False
    assert make_task(models["default"], "onnx-int8", CONFIG).spectral is None
    assert on["spectral"]["reference"] == 100 and on["fit"]["spectral_test"] is True
    assert len(on["calibration"]["spectral_loc"]) == 1
    assert make_task(models["on"], "onnx-int8", CONFIG).spectral is not None
    assert "Spectral-residual test" in (models["on"] / "MODEL_CARD.md").read_text()


def test_a_threshold_of_0_99_gives_about_1_percent_on_normal_data(models: dict[str, Path]) -> None:
    shares = []
    for seed in (2, 3):
        result = replay(make_task(models["on"], "onnx-int8", CONFIG), *_stream(cycling(6000, seed)))
        likelihood = result.likelihood[~np.isnan(result.likelihood)]
        shares.append(np.mean(likelihood > 0.99))
    assert 0.003 < np.mean(shares) < 0.03, shares


def test_a_spike_inside_the_normal_range_is_caught_at_once(models: dict[str, Path]) -> None:
    table = cycling(3000, seed=4)
    table.values[2000, 0] += 6.0  # within the cycle's range, about four noise spreads
    result = replay(make_task(models["alone"], "onnx-int8", CONFIG), *_stream(table))
    assert result.likelihood[2001:2010].max() > 0.9999  # windows ending 1 to 9 samples after it
    assert not result.predicted[:2000].any() and result.predicted[2000:2006].any()


def _stream(table: SensorTable) -> tuple[np.ndarray, np.ndarray]:
    return table.timestamps, table.values
