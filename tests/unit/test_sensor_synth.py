"""The synthetic machine generator: faults are present exactly where they are labelled, files round-trip."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from edge_agent.errors import DataError
from edge_agent.tasks.sensor import synth
from edge_agent.tasks.sensor.dataio import read_sensor_csv, write_sensor_csv
from edge_agent.tasks.sensor.evaluation import segments

SECONDS = 4 * 3600
FAULTS = [
    synth.Fault("bearing_wear", 1800, 900),
    synth.Fault("overheating", 5400, 900),
    synth.Fault("sensor_freeze", 9000, 600, "flow"),
    synth.Fault("spikes", 12600, 300),
]


def channel(name: str) -> int:
    return synth.CHANNELS.index(name)


@pytest.fixture(scope="module")
def pair() -> tuple[synth.SensorTable, synth.SensorTable]:
    return synth.generate(SECONDS, seed=5, faults=[]), synth.generate(SECONDS, seed=5, faults=FAULTS)


def test_labels_cover_exactly_the_injected_faults(pair: tuple[synth.SensorTable, synth.SensorTable]) -> None:
    _, faulty = pair
    assert faulty.labels is not None and faulty.faults is not None
    assert segments(faulty.labels) == [(f.start, f.start + f.duration) for f in FAULTS]
    for fault in FAULTS:
        assert set(faulty.faults[fault.start : fault.start + fault.duration]) == {fault.kind}


def test_data_changes_only_inside_labelled_faults(pair: tuple[synth.SensorTable, synth.SensorTable]) -> None:
    normal, faulty = pair
    assert faulty.labels is not None
    changed = np.any(normal.values != faulty.values, axis=1)
    assert not np.any(changed[faulty.labels == 0])
    for fault in FAULTS:
        assert changed[fault.start : fault.start + fault.duration].mean() > 0.05, fault.kind


def test_each_fault_has_its_physical_signature(pair: tuple[synth.SensorTable, synth.SensorTable]) -> None:
    normal, faulty = pair
    wear, heat, freeze, spikes = (slice(f.start, f.start + f.duration) for f in FAULTS)
    v, t, i, f = channel("vibration"), channel("temperature"), channel("current"), channel("flow")
    assert faulty.values[wear, v][-100:].mean() > 1.8 * normal.values[wear, v][-100:].mean()
    assert faulty.values[heat, t][-100:].mean() > normal.values[heat, t][-100:].mean() + 8.0
    assert np.ptp(faulty.values[freeze, f]) == 0.0 and np.ptp(normal.values[freeze, f]) > 1.0
    jumps = np.abs(faulty.values[spikes, i] - normal.values[spikes, i])
    assert np.sum(jumps > 1.0) > 10


def test_normal_operation_has_load_changes_and_drift() -> None:
    table = synth.generate(8 * 3600, seed=1, faults=[])
    flow = table.values[:, channel("flow")]
    assert flow.max() - flow.min() > 40.0  # several load set points, not a flat line
    assert table.labels is not None and not table.labels.any()


def test_schedule_spreads_one_fault_of_each_kind() -> None:
    faults = synth.schedule(2 * 3600, np.random.default_rng(0), 4)
    assert [f.kind for f in faults] == list(synth.FAULT_KINDS)
    assert all(a.start + a.duration < b.start for a, b in itertools.pairwise(faults))


def test_unknown_fault_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        synth.generate(600, seed=0, faults=[synth.Fault("meteor", 100, 50)])


def test_csv_round_trip_keeps_values_and_labels(tmp_path: Path) -> None:
    table = synth.generate(900, seed=3, faults=[synth.Fault("spikes", 300, 120)])
    path = write_sensor_csv(tmp_path / "machine.csv", table)
    back = read_sensor_csv(path)
    assert back.channels == list(synth.CHANNELS)
    assert np.allclose(back.values, table.values, atol=1e-4)
    assert np.array_equal(back.timestamps, table.timestamps)
    assert back.labels is not None and table.labels is not None
    assert np.array_equal(back.labels, table.labels)


def test_csv_with_a_bad_value_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,a,b\n2026-01-05T08:00:00Z,1,2\n2026-01-05T08:00:01Z,1,x\n")
    with pytest.raises(DataError, match=r"bad\.csv:3: expected a timestamp and 2 numbers"):
        read_sensor_csv(path)


def test_cli_writes_a_labelled_file(tmp_path: Path) -> None:
    out = tmp_path / "demo.csv"
    assert synth.main(["--out", str(out), "--hours", "0.5", "--seed", "4"]) == 0
    table = read_sensor_csv(out)
    assert len(table.values) == 1800
    assert table.labels is not None and table.labels.sum() > 0
    assert synth.main(["--out", str(out), "--hours", "0.01"]) == 2
