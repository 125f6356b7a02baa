"""Synthetic streams for the sensor job beyond the pump: univariate faults, one faulty channel among many, drift.

    python -m bench.sensor_synthetic [--json out.json] [--adapt 2d]

Every stream is fitted with `fit sensor`'s defaults on its first 15% (as streaming benchmarks allow)
and replayed through the device's task (int8 ONNX), deciding on the raw score and on the likelihood:

- univariate, 5-minute samples over 3 weeks, a daily cycle of 2 std and AR(1) noise; one stream per fault
  kind (level shift, spikes, drift, variance change) with three faults each, and one normal-only stream;
- univariate at hourly samples over 90 days (level shift, spikes, normal), a normal stream with a daily
  cycle of 6 std, and a level-shift stream with 5% of its samples missing in gaps of 1-12 samples;
- 52 channels at 3-minute samples, three faults each confined to one channel (offsets of 3, 5, 8 std);
- the same univariate normal stream with a slow level drift (no labelled fault), with and without
  adaptation: what it gains (false alarms) and risks (a slow fault learned away).

The suites run with the model's defaults (one-channel fits record adaptation with a 3-day time constant).

Figures: faults detected, mean delay, false alarms per day (predicted anomalies overlapping no label).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

DAY = 86_400.0


def base(rows: int, channels: int, period_s: float, seed: int, cycle: float = 2.0) -> np.ndarray:
    """AR(1) noise (std 1) on every channel plus a daily cycle of `cycle` std on the first half of them."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, np.sqrt(1 - 0.8**2), size=(rows, channels))
    values = np.zeros((rows, channels))
    for i in range(1, rows):
        values[i] = 0.8 * values[i - 1] + noise[i]
    phase = 2 * np.pi * np.arange(rows) * period_s / DAY
    values[:, : max(1, channels // 2)] += cycle * np.sin(phase)[:, None]
    return values + 10.0


def inject(values: np.ndarray, kind: str, start: int, length: int, channel: int, size: float) -> None:
    span = slice(start, start + length)
    rng = np.random.default_rng(start)
    if kind == "level_shift":
        values[span, channel] += size
    elif kind == "spikes":
        values[start : start + length : max(1, length // 5), channel] += 2 * size
    elif kind == "drift":
        values[span, channel] += np.linspace(0, 2 * size, length)
    elif kind == "variance":
        values[span, channel] += rng.normal(0, size, length)


def stream(
    kind: str, channels: int, period_s: float, rows: int, sizes: list[float], seed: int, cycle: float = 2.0
) -> dict[str, Any]:
    values = base(rows, channels, period_s, seed, cycle)
    labels = np.zeros(rows, dtype=np.int8)
    first = int(0.15 * rows)
    if kind != "normal":
        slots = np.linspace(first + 0.1 * rows, rows - 0.1 * rows, len(sizes)).astype(int)
        for k, (start, size) in enumerate(zip(slots, sizes)):
            length = int(0.02 * rows)
            inject(values, kind, int(start), length, k % channels if channels > 1 else 0, size)
            labels[start : start + length] = 1
    return {"timestamps": 1_767_600_000.0 + period_s * np.arange(rows), "values": values, "labels": labels}


def with_gaps(data: dict[str, Any], share: float, seed: int) -> dict[str, Any]:
    """Drop about `share` of the samples in runs of 1-12 (a flaky link), keeping timestamps as they were."""
    rng = np.random.default_rng(seed)
    rows = len(data["values"])
    keep = np.ones(rows, dtype=bool)
    while (~keep).mean() < share:
        start = int(rng.integers(0, rows - 12))
        keep[start : start + int(rng.integers(1, 13))] = False
    return {key: value[keep] for key, value in data.items()}


def with_companions(data: dict[str, Any], count: int, period_s: float, seed: int) -> dict[str, Any]:
    """The same stream with `count` normal channels beside it: the multichannel model the fault's channel is
    compared with (the fault stays in channel 0, the companions never change)."""
    others = base(len(data["values"]), count, period_s, seed + 1000)
    return {**data, "values": np.concatenate([data["values"], others], axis=1)}


def evaluate_stream(
    data: dict[str, Any], work: Path, decide_on: str, adapt: str | None, recent_test: str = "auto"
) -> dict[str, Any]:
    from edge_agent.tasks.sensor.config import SensorAnomalyTaskConfig
    from edge_agent.tasks.sensor.evaluation import Run, evaluate
    from edge_agent.tasks.sensor.fitting import FitOptions, fit_arrays
    from edge_agent.tasks.sensor.replay import make_task, replay
    from edge_agent.tasks.sensor.training import TrainSettings

    values, stamps = data["values"], data["timestamps"]
    first = int(0.15 * len(values))
    channels = [f"c{i}" for i in range(values.shape[1])]
    if not (work / "manifest.yaml").exists():
        latent = max(1, min(16, 20 * len(channels) // 2))  # what `fit sensor` picks by default
        options = FitOptions(name="synthetic", train=TrainSettings(latent=latent), recent_test=recent_test)
        fit_arrays(values[:first], channels, work, options, timestamps=stamps[:first])
    fields = {} if adapt == "default" else {"adapt": adapt}  # "default": the model's (fit's) adaptation
    config = SensorAnomalyTaskConfig(kind="sensor_anomaly", batch_size=256, decide_on=decide_on, **fields)
    result = replay(make_task(work, "onnx-int8", config), stamps, values)
    cut = slice(first, None)
    report = evaluate([Run(data["labels"][cut], result.predicted[cut], stamps[cut])]).as_dict()
    return {k: report[k] for k in ("f1", "detected", "anomalies", "false_alarms_per_day", "mean_delay_s")}


# name: (fault kind, channels, sample period s, rows, fault sizes in std, daily cycle in std, share of samples lost)
SUITES: dict[str, tuple[str, int, float, int, list[float]] | tuple[str, int, float, int, list[float], float, float]] = {
    "univariate level_shift": ("level_shift", 1, 300.0, 6048, [3.0, 5.0, 8.0]),
    "univariate spikes": ("spikes", 1, 300.0, 6048, [4.0, 6.0, 8.0]),
    "univariate drift": ("drift", 1, 300.0, 6048, [3.0, 5.0, 8.0]),
    "univariate variance": ("variance", 1, 300.0, 6048, [2.0, 3.0, 4.0]),
    "univariate normal": ("normal", 1, 300.0, 6048, []),
    "univariate hourly level_shift": ("level_shift", 1, 3600.0, 2160, [3.0, 5.0, 8.0]),
    "univariate hourly spikes": ("spikes", 1, 3600.0, 2160, [4.0, 6.0, 8.0]),
    "univariate hourly normal": ("normal", 1, 3600.0, 2160, []),
    "univariate daily cycle 6 std, normal": ("normal", 1, 300.0, 6048, [], 6.0, 0.0),
    "univariate level_shift, 5% of samples lost": ("level_shift", 1, 300.0, 6048, [3.0, 5.0, 8.0], 2.0, 0.05),
    "52 channels, one-channel offsets": ("level_shift", 52, 180.0, 4000, [3.0, 5.0, 8.0]),
    "52 channels normal": ("normal", 52, 180.0, 4000, []),
}


def drift_suite(adapt: str) -> dict[str, Any]:
    """A slow level drift of 6 std over three weeks (normal), and a slow fault ramp, with/without adaptation."""
    rows = 6048
    out: dict[str, Any] = {}
    for name, ramp_labelled in (("drift, no fault", False), ("slow fault ramp", True)):
        data = stream("normal", 1, 300.0, rows, [], seed=7)
        if ramp_labelled:
            start, length = int(0.6 * rows), int(0.2 * rows)
            data["values"][start : start + length, 0] += np.linspace(0, 8.0, length)
            data["labels"][start : start + length] = 1
        else:
            data["values"][:, 0] += np.linspace(0, 6.0, rows)
        with tempfile.TemporaryDirectory() as scratch:
            for mode in (None, adapt):
                out[f"{name}, adapt {mode or 'off'}"] = evaluate_stream(data, Path(scratch), "likelihood", mode)
    return out


def _versus_multichannel(data: dict[str, Any], count: int, period_s: float, seed: int, recent: str) -> dict[str, Any]:
    """The fault's channel with normal companions, fitted as one multichannel model: F1 against the univariate one."""
    key = f"likelihood, with {count} normal channels"
    with tempfile.TemporaryDirectory() as scratch:
        return {key: evaluate_stream(with_companions(data, count, period_s, seed), Path(scratch), "likelihood",
                                     "default", recent)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sensor_synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--adapt", default="3d", help="adaptation time constant for the drift suite (against off)")
    parser.add_argument("--recent-test", choices=("auto", "on", "off"), default="auto", help="fit's --recent-test")
    parser.add_argument("--only", default=None, help="run only the suites whose name contains this text")
    parser.add_argument(
        "--companions",
        type=int,
        default=7,
        help="normal channels beside each univariate fault "
        "stream for the multichannel comparison (SKAB has 8 channels); 0: no comparison",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    results: dict[str, Any] = {}
    for name, suite in SUITES.items():
        if args.only is not None and args.only not in name:
            continue
        kind, channels, period, rows, sizes, *rest = suite
        cycle, lost = (float(rest[0]), float(rest[1])) if rest else (2.0, 0.0)
        data = stream(kind, channels, period, rows, sizes, seed=len(name), cycle=cycle)
        data = with_gaps(data, lost, seed=len(name)) if lost > 0 else data
        with tempfile.TemporaryDirectory() as scratch:
            results[name] = {
                d: evaluate_stream(data, Path(scratch), d, "default", args.recent_test) for d in ("score", "likelihood")
            }
        if channels == 1 and kind != "normal" and args.companions > 0:
            results[name] |= _versus_multichannel(data, args.companions, period, len(name), args.recent_test)
        print(name, json.dumps(results[name]), flush=True)
    if args.only is None or args.only in "drift":
        results["drift"] = drift_suite(args.adapt)
        print("drift", json.dumps(results["drift"]), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
