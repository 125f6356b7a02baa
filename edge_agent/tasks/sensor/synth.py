"""Synthetic machine data: a pump/motor at 1 Hz under changing load and drift, with labelled injected faults.

Normal operation: the load follows set points held for minutes and ramps between them; flow, pressure
(pump curve), motor current and vibration follow the load with sensor noise; the motor temperature
lags the load (first order, ~10 min) over a daily ambient cycle; the pressure sensor drifts slowly.
Faults (label 1 while active): bearing_wear (vibration grows, bursts, slight heating), overheating
(cooling loss: temperature climbs, current creeps up), sensor_freeze (one channel stuck at its last
reading), spikes (electrical transients on current and pressure).

    python -m edge_agent.tasks.sensor.synth --out data.csv --hours 2 --seed 2 [--normal-only]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.tasks.sensor.dataio import SensorTable, write_sensor_csv

CHANNELS = ("vibration", "temperature", "current", "pressure", "flow")
FAULT_KINDS = ("bearing_wear", "overheating", "sensor_freeze", "spikes")
START_TIME = 1_767_600_000.0  # 2026-01-05 08:00:00 UTC, a fixed epoch so files are reproducible
_V, _T, _I, _P, _F = range(5)


@dataclass(frozen=True)
class Fault:
    """A fault of `kind` from sample `start` for `duration` samples; `channel` for sensor_freeze."""

    kind: str
    start: int
    duration: int
    channel: str | None = None


def _load_profile(n: int, rng: np.random.Generator) -> np.ndarray:
    """Set points between 35% and 100% held 5-30 min, joined by ramps of about a minute."""
    load = np.empty(n)
    i, level = 0, rng.uniform(0.5, 0.9)
    while i < n:
        hold = int(rng.uniform(300, 1800))
        load[i : i + hold] = level
        i += hold
        level = float(np.clip(level + rng.normal(0, 0.25), 0.35, 1.0))
    alpha = 1.0 / 45.0  # first-order lag smooths steps into ramps
    smooth = np.empty(n)
    acc = load[0]
    for k in range(n):
        acc += alpha * (load[k] - acc)
        smooth[k] = acc
    return smooth + rng.normal(0, 0.004, n)


def _lag(target: np.ndarray, tau_s: float, first: float) -> np.ndarray:
    out = np.empty_like(target)
    acc = first
    for k in range(len(target)):
        acc += (target[k] - acc) / tau_s
        out[k] = acc
    return out


def normal_operation(seconds: int, rng: np.random.Generator, start_time: float = START_TIME) -> SensorTable:
    """`seconds` samples of healthy operation (labels all 0)."""
    n = int(seconds)
    t = np.arange(n, dtype=np.float64)
    load = _load_profile(n, rng)
    ambient = 22.0 + 3.0 * np.sin(2 * np.pi * (start_time + t) / 86_400.0) + rng.uniform(-2, 2)
    values = np.empty((n, len(CHANNELS)))
    values[:, _F] = 118.0 * load + rng.normal(0, 0.9, n)
    drift = 0.03 * t / 86_400.0  # pressure sensor offset drift, bar per day
    values[:, _P] = 0.8 + 3.2 * load**2 + drift + rng.normal(0, 0.025, n)
    values[:, _I] = 3.5 + 9.0 * load + 0.15 * (values[:, _P] - 0.8) + rng.normal(0, 0.08, n)
    heat = ambient + 28.0 * load
    values[:, _T] = _lag(heat, 600.0, float(heat[0])) + rng.normal(0, 0.06, n)
    ripple = 0.12 * np.sin(2 * np.pi * t / 37.0 + rng.uniform(0, 6.3))
    values[:, _V] = (1.4 + 1.1 * load + ripple) * np.exp(rng.normal(0, 0.04, n))
    return SensorTable(
        timestamps=start_time + t,
        values=values,
        channels=list(CHANNELS),
        labels=np.zeros(n, dtype=np.int8),
        faults=[""] * n,
    )


def _bearing_wear(x: np.ndarray, rng: np.random.Generator) -> None:
    n = len(x)
    growth = np.exp(np.linspace(0.0, np.log(2.2), n))  # damage grows faster as it progresses
    bursts = 1.0 + (rng.random(n) < 0.05) * rng.uniform(0.3, 1.0, n) * np.linspace(0.3, 1.0, n)
    x[:, _V] *= growth * bursts
    x[:, _T] += np.linspace(0.0, 3.0, n)


def _overheating(x: np.ndarray, rng: np.random.Generator) -> None:
    n = len(x)
    rise = 16.0 * (1.0 - np.exp(-np.arange(n) / (n / 2.5)))
    x[:, _T] += rise
    x[:, _I] *= 1.0 + 0.05 * rise / 16.0
    x[:, _T] += rng.normal(0, 0.05, n)


def _spikes(x: np.ndarray, rng: np.random.Generator) -> None:
    n = len(x)
    hits = rng.random(n) < 0.12
    x[hits, _I] += rng.choice([-1.0, 1.0], hits.sum()) * rng.uniform(1.5, 4.0, hits.sum())
    hits = rng.random(n) < 0.08
    x[hits, _P] += rng.uniform(0.3, 0.9, hits.sum())


def inject(table: SensorTable, fault: Fault, rng: np.random.Generator) -> None:
    """Apply `fault` in place and label its samples."""
    end = min(len(table.values), fault.start + fault.duration)
    if fault.start < 1 or fault.start >= end:
        raise ValueError(f"fault {fault.kind} at {fault.start} does not fit in {len(table.values)} samples")
    segment = table.values[fault.start : end]
    if fault.kind == "bearing_wear":
        _bearing_wear(segment, rng)
    elif fault.kind == "overheating":
        _overheating(segment, rng)
    elif fault.kind == "spikes":
        _spikes(segment, rng)
    elif fault.kind == "sensor_freeze":
        column = CHANNELS.index(fault.channel or "pressure")
        segment[:, column] = table.values[fault.start - 1, column]
    else:
        raise ValueError(f"unknown fault kind {fault.kind!r}; choose one of {', '.join(FAULT_KINDS)}")
    assert table.labels is not None and table.faults is not None
    table.labels[fault.start : end] = 1
    table.faults[fault.start : end] = [fault.kind] * (end - fault.start)


def schedule(seconds: int, rng: np.random.Generator, count: int | None = None) -> list[Fault]:
    """Faults spread evenly (one of each kind in turn) with normal operation before, between and after."""
    count = count if count is not None else max(1, seconds // 1800)
    slot = seconds // (count + 1)
    faults = []
    for k in range(count):
        kind = FAULT_KINDS[k % len(FAULT_KINDS)]
        duration = int(rng.uniform(0.25, 0.45) * slot) if kind != "spikes" else int(rng.uniform(120, 300))
        start = (k + 1) * slot - duration // 2
        channel = str(rng.choice(["pressure", "flow", "temperature"])) if kind == "sensor_freeze" else None
        faults.append(Fault(kind, start, duration, channel))
    return faults


def generate(
    seconds: int, seed: int, faults: Sequence[Fault] | None = None, start_time: float = START_TIME
) -> SensorTable:
    """Normal operation with `faults` injected (none when empty; a default schedule when None)."""
    rng = np.random.default_rng(seed)
    table = normal_operation(seconds, rng, start_time)
    for fault in schedule(seconds, rng) if faults is None else faults:
        inject(table, fault, rng)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_agent.tasks.sensor.synth", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    parser.add_argument("--hours", type=float, default=2.0, help="length at 1 Hz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--faults", type=int, default=None, help="number of faults (default: one per 30 min)")
    parser.add_argument("--normal-only", action="store_true", help="no faults (training data for fit)")
    args = parser.parse_args(argv)
    seconds = int(args.hours * 3600)
    if seconds < 120:
        sys.stderr.write("error: --hours must give at least 120 samples\n")
        return 2
    rng = np.random.default_rng(args.seed + 10_000)
    faults = [] if args.normal_only else schedule(seconds, rng, args.faults)
    table = generate(seconds, args.seed, faults)
    write_sensor_csv(args.out, table)
    sys.stdout.write(f"wrote {args.out}: {seconds} samples, {len(faults)} fault(s)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
