"""NAB-like univariate streams and a reimplementation of NAB's standard-profile score, for the one-channel defaults.

    python -m bench.sensor_nablike [--seeds 1,2,3] [--series 20] [--variants default,adapt-1d] [--json out.json]

Not NAB's data nor NAB's code: a seeded generator of series shaped like NAB's (machine temperatures, CPU and
network load, traffic) and our own implementation of its scoring as NAB documents it.

Generator (`make_series`), per series, one of five families, at 5-minute or hourly spacing, 3,000-20,000 points:
- `walk`: a mean-reverting random-walk level plus noise (a machine temperature);
- `daily`: a daily cycle (and a weekly one) whose amplitude changes slowly, plus AR(1) noise (traffic);
- `hetero`: a positive load whose noise grows with a daily cycle, with log-normal bursts (CPU, network);
- `steps`: a level that holds and jumps between a few set points (benign regimes, in the normal part too);
- `quantised`: a slow cycle read by a coarse sensor (integer steps) with rare glitches of one step.
Any family may carry a slow benign drift. The normal part is unlabelled, anomalies (1-4, after the first 15% and
after a margin) are NAB's kinds: a spike, a level shift, a variance change, a cycle break (the daily pattern stops
or is shifted by half a day) and a flat line (the sensor reads its last value). Each is labelled at its start.

Scoring (`nab_score`), NAB's standard profile (A_TP 1, A_FP 0.11, A_FN 1): a window of 10% of the series length
divided by the number of anomalies, centred on each anomaly's start. Only detector onsets count (anomaly_start,
here the samples where the debounced state turns on); the first 15% (the fit data) is not scored. The first onset
inside a window earns sigmoid(y) = 2 / (1 + exp(5 y)) - 1 with y = (onset - window end) / window length in [-1, 0]
(about 0.99 at the window's start, 0 at its end); later onsets in the same window count nothing; a window with no
onset costs -1. An onset outside every window costs A_FP x sigmoid(y) with y measured from the end of the last
window before it (so close after a window costs little, far after it nearly -0.11) and -0.11 before any window.
Raw scores are summed over a corpus and normalised: 100 x (raw - null) / (perfect - null), where null (never
alarm) is -windows and perfect is every window's onset at its first sample.

Each series is fitted with the real `edge-agent fit sensor` (its argument parser and defaults, plus a variant's
extra fit flags) on a CSV of its first 15% and replayed through the device's task (int8 ONNX, stride 1); a
variant may also set task config fields (adapt, fast_likelihood, min_duration ...).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DAY = 86_400.0
PROBATION = 0.15
A_FP = 0.11
FAMILIES = ("walk", "daily", "hetero", "steps", "quantised")
KINDS = ("spike", "level_shift", "variance", "cycle_break", "flatline")


@dataclass
class Series:
    """One stream: timestamps (s), values, anomaly start indices and what they are."""

    name: str
    timestamps: np.ndarray
    values: np.ndarray
    starts: list[int] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)


def _ar1(rng: np.random.Generator, rows: int, phi: float) -> np.ndarray:
    noise = rng.normal(0.0, math.sqrt(1 - phi**2), rows)
    out = np.empty(rows)
    out[0] = noise[0]
    for i in range(1, rows):
        out[i] = phi * out[i - 1] + noise[i]
    return out


def _cycle(rows: int, period_s: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(rows) * period_s
    daily = np.sin(2 * np.pi * t / DAY + rng.uniform(0, 2 * np.pi))
    weekly = 0.3 * np.sin(2 * np.pi * t / (7 * DAY)) * rng.uniform(0, 1)
    amplitude = 1 + 0.3 * np.sin(2 * np.pi * t / (rng.uniform(10, 40) * DAY) + rng.uniform(0, 6))
    return amplitude * daily + weekly


def _walk(rng: np.random.Generator, rows: int, period_s: float) -> np.ndarray:
    level = np.cumsum(rng.normal(0, 0.05, rows))
    level -= np.convolve(level, np.ones(501) / 501, mode="same") * 0.5  # mean reversion of the slow part
    return 70 + 3 * level + _ar1(rng, rows, 0.7)


def _daily(rng: np.random.Generator, rows: int, period_s: float) -> np.ndarray:
    return 100 + 20 * _cycle(rows, period_s, rng) + 2 * _ar1(rng, rows, 0.5)


def _hetero(rng: np.random.Generator, rows: int, period_s: float) -> np.ndarray:
    cycle = _cycle(rows, period_s, rng)
    noise = (1.5 + cycle) * rng.normal(0, 1, rows)
    bursts = np.where(rng.random(rows) < 0.01, rng.lognormal(1.0, 0.5, rows), 0.0)
    return np.maximum(0.0, 20 + 6 * cycle + noise + bursts)


def _steps(rng: np.random.Generator, rows: int, period_s: float) -> np.ndarray:
    points = rng.normal(0, 4, 4)
    holds = np.cumsum(rng.integers(max(50, rows // 40), max(51, rows // 8), 60))
    level = points[rng.integers(0, 4, len(holds))][np.searchsorted(holds, np.arange(rows), side="right") % 60]
    return 50 + level + _ar1(rng, rows, 0.6)


def _quantised(rng: np.random.Generator, rows: int, period_s: float) -> np.ndarray:
    values = 40 + 3 * _cycle(rows, period_s, rng) + 0.4 * _ar1(rng, rows, 0.9)
    glitch = np.where(rng.random(rows) < 0.002, rng.choice([-1.0, 1.0], rows), 0.0)
    return np.round(values) + glitch


BUILDERS: dict[str, Callable[[np.random.Generator, int, float], np.ndarray]] = {
    "walk": _walk, "daily": _daily, "hetero": _hetero, "steps": _steps, "quantised": _quantised,
}  # fmt: skip


def _noise_scale(values: np.ndarray) -> float:
    """A robust size of the sample-to-sample noise (what an anomaly's size is measured in)."""
    steps = np.diff(values)
    return float(max(1e-6, 1.4826 * np.median(np.abs(steps - np.median(steps))) / math.sqrt(2)))


def _inject(values: np.ndarray, kind: str, start: int, length: int, period_s: float, rng: np.random.Generator) -> None:
    spread = float(np.std(values[: max(10, start)]))
    end = min(len(values), start + length)
    noise = _noise_scale(values[:start])
    if kind == "spike":
        values[start : start + int(rng.integers(1, 4))] += rng.choice([-1, 1]) * rng.uniform(0.8, 2.0) * spread
    elif kind == "level_shift":
        values[start:end] += rng.choice([-1, 1]) * rng.uniform(0.6, 1.5) * spread
    elif kind == "variance":
        values[start:end] += rng.normal(0, rng.uniform(4, 8) * noise, end - start)
    elif kind == "cycle_break":
        shift = int(DAY / 2 / period_s)
        source = np.arange(start, end) - shift
        values[start:end] = values[np.clip(source, 0, None)] if rng.random() < 0.5 else values[start - 1]
        values[start:end] += rng.normal(0, noise, end - start)
    elif kind == "flatline":
        values[start:end] = values[start - 1]


def _benign(values: np.ndarray, rng: np.random.Generator) -> None:
    """A slow drift over the whole series (half of them), in units of the series' spread."""
    if rng.random() < 0.5:
        values += np.linspace(0, rng.uniform(-1.0, 1.0) * float(np.std(values)), len(values))


def make_series(seed: int, index: int) -> Series:
    """Series `index` of corpus `seed`: family and spacing in turn, everything else drawn."""
    rng = np.random.default_rng([seed, index])
    family = FAMILIES[index % len(FAMILIES)]
    period_s = 300.0 if (index // len(FAMILIES)) % 2 == 0 else 3600.0
    rows = int(rng.integers(3000, 20_001))
    values = BUILDERS[family](rng, rows, period_s)
    _benign(values, rng)
    count = int(rng.integers(1, 5))
    first = int((PROBATION + 0.05) * rows)
    starts = sorted(rng.choice(np.arange(first, rows - rows // 20), size=count, replace=False).tolist())
    starts = [s for k, s in enumerate(starts) if k == 0 or s - starts[k - 1] > rows // (4 * count)]
    kinds = [KINDS[int(rng.integers(0, len(KINDS)))] for _ in starts]
    for start, kind in zip(starts, kinds):
        length = int(rng.integers(max(3, int(DAY / 4 / period_s)), max(4, int(2 * DAY / period_s))))
        _inject(values, kind, start, length, period_s, rng)
    stamps = 1_700_000_000.0 + period_s * np.arange(rows)
    return Series(f"s{seed}-{index}-{family}-{int(period_s)}s", stamps, values, starts, kinds)


def sigmoid(y: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


@dataclass
class NabCount:
    """Raw NAB terms of one series or a corpus: raw score, windows, windows caught, onsets outside windows."""

    raw: float = 0.0
    windows: int = 0
    caught: int = 0
    false_onsets: int = 0
    earliness: list[float] = field(default_factory=list)  # sigmoid of each caught window's first onset

    def add(self, other: NabCount) -> None:
        self.raw += other.raw
        self.windows += other.windows
        self.caught += other.caught
        self.false_onsets += other.false_onsets
        self.earliness += other.earliness

    def normalised(self) -> float:
        """100 for every window caught at its start, 0 for never alarming."""
        null, perfect = -float(self.windows), self.windows * sigmoid(-1.0)
        return 100.0 * (self.raw - null) / (perfect - null) if self.windows else 0.0


def nab_windows(rows: int, starts: list[int]) -> list[tuple[int, int]]:
    """NAB's windows: 10% of the length over the number of anomalies, centred on each; overlapping ones merge."""
    if not starts:
        return []
    half = int(0.1 * rows / len(starts) / 2)
    windows: list[tuple[int, int]] = []
    for s in starts:
        lo, hi = max(0, s - half), min(rows - 1, s + half)
        if windows and lo <= windows[-1][1]:
            windows[-1] = (windows[-1][0], hi)
        else:
            windows.append((lo, hi))
    return windows


def nab_score(rows: int, starts: list[int], onsets: list[int]) -> NabCount:
    """NAB standard-profile raw score of one series' detector onsets (indices), ignoring the probation part."""
    windows = nab_windows(rows, starts)
    probation = int(PROBATION * rows)
    count = NabCount(windows=len(windows))
    hit = [False] * len(windows)
    for onset in sorted(o for o in onsets if o >= probation):
        inside = next((k for k, (lo, hi) in enumerate(windows) if lo <= onset <= hi), None)
        if inside is not None:
            if not hit[inside]:
                lo, hi = windows[inside]
                value = sigmoid((onset - hi) / max(1, hi - lo))
                hit[inside], count.raw, count.caught = True, count.raw + value, count.caught + 1
                count.earliness.append(value)
            continue
        before = [(lo, hi) for lo, hi in windows if hi < onset]
        penalty = A_FP * sigmoid((onset - before[-1][1]) / max(1, before[-1][1] - before[-1][0])) if before else -A_FP
        count.raw += penalty
        count.false_onsets += 1
    count.raw -= hit.count(False)
    return count


# variant name: (extra `fit sensor` flags, task config fields)
VARIANTS: dict[str, tuple[list[str], dict[str, Any]]] = {
    "default": ([], {}),
    "adapt-off": ([], {"adapt": None}),
    "recent-off": (["--recent-test", "off"], {}),
    "fast-off": ([], {"fast_likelihood": None}),
    "recent-off,fast-off": (["--recent-test", "off"], {"fast_likelihood": None}),
    "adapt-6h": ([], {"adapt": "6h"}),
    "adapt-1d": ([], {"adapt": "1d"}),
    "adapt-3d": ([], {"adapt": "3d"}),
    "adapt-7d": ([], {"adapt": "7d"}),
    "recent-off,adapt-1d": (["--recent-test", "off"], {"adapt": "1d"}),
    "adapt-1d,fast-off": ([], {"adapt": "1d", "fast_likelihood": None}),
    "adapt-1d,min-2-spans": ([], {"adapt": "1d", "min_windows": 40}),
    "min-2-spans": ([], {"min_windows": 40}),
    "clear-1d": ([], {"clear_duration": "1d"}),
    "threshold-0.9999": ([], {"likelihood_threshold": 0.9999}),
    "spectral-on": (["--spectral-test", "on"], {}),
    "spectral-off": (["--spectral-test", "off"], {}),
    "recent-off,spectral-on": (["--recent-test", "off", "--spectral-test", "on"], {}),
}


def write_csv(path: Path, stamps: np.ndarray, values: np.ndarray) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value"])
        writer.writerows(zip((f"{t:.0f}" for t in stamps), (f"{v:.6g}" for v in values)))


def fit_model(series: Series, work: Path, flags: list[str]) -> Path:
    """The real `edge-agent fit sensor` with its defaults (plus `flags`) on the first 15% of the series."""
    from edge_agent.tasks.sensor import fit

    first = int(PROBATION * len(series.values))
    model = work / ("m" + "".join(f.strip("-") for f in flags))
    if not (model / "manifest.yaml").exists():
        write_csv(work / "normal.csv", series.timestamps[:first], series.values[:first])
        with contextlib.redirect_stdout(io.StringIO()):
            code = fit.main(["--normal", str(work / "normal.csv"), "--out", str(model), *flags])
        if code != 0:
            raise RuntimeError(f"fit sensor failed on {series.name}")
    return model


def onsets_of(series: Series, model: Path, config_fields: dict[str, Any]) -> list[int]:
    """Replay through the device's task; onsets are the samples where the debounced state turns on."""
    from edge_agent.tasks.sensor.config import SensorAnomalyTaskConfig
    from edge_agent.tasks.sensor.replay import make_task, replay

    config = SensorAnomalyTaskConfig(kind="sensor_anomaly", batch_size=256, **config_fields)
    result = replay(make_task(model, "onnx-int8", config), series.timestamps, series.values[:, None])
    turns = np.flatnonzero(np.diff(result.predicted.astype(np.int8), prepend=0) == 1)
    return [int(i) for i in turns]


def run_variants(series: Series, variants: list[str]) -> dict[str, NabCount]:
    out: dict[str, NabCount] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in variants:
            flags, fields = VARIANTS[name]
            model = fit_model(series, Path(scratch), flags)
            out[name] = nab_score(len(series.values), series.starts, onsets_of(series, model, fields))
    return out


def summary(counts: dict[str, dict[int, NabCount]]) -> dict[str, Any]:
    """Per variant: the normalised score per seed, their mean and spread, windows caught and false onsets."""
    table: dict[str, Any] = {}
    for name, per_seed in counts.items():
        scores = [c.normalised() for c in per_seed.values()]
        table[name] = {
            "scores": {str(s): round(c.normalised(), 1) for s, c in per_seed.items()},
            "mean": round(float(np.mean(scores)), 1),
            "spread": round(float(np.max(scores) - np.min(scores)), 1),
            "caught": sum(c.caught for c in per_seed.values()),
            "windows": sum(c.windows for c in per_seed.values()),
            "false_onsets": sum(c.false_onsets for c in per_seed.values()),
        }
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sensor_nablike", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3", help="corpus seeds, comma separated")
    parser.add_argument("--series", type=int, default=20, help="series per corpus (families and spacings in turn)")
    parser.add_argument("--variants", default=";".join(VARIANTS), help=f"';'-separated, of: {'; '.join(VARIANTS)}")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    variants = [v for v in args.variants.split(";") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {', '.join(unknown)}; choose from {'; '.join(VARIANTS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    counts: dict[str, dict[int, NabCount]] = {v: {s: NabCount() for s in seeds} for v in variants}
    per_family: dict[str, dict[str, NabCount]] = {v: {f: NabCount() for f in FAMILIES} for v in variants}
    for seed in seeds:
        for index in range(args.series):
            series = make_series(seed, index)
            results = run_variants(series, variants)
            for name, count in results.items():
                counts[name][seed].add(count)
                per_family[name][series.name.split("-")[2]].add(count)
            print(series.name, series.kinds, {n: (round(c.raw, 2), c.false_onsets) for n, c in results.items()},
                  flush=True)  # fmt: skip
    table = summary(counts)
    for name, row in table.items():
        row["families"] = {f: round(c.normalised(), 1) for f, c in per_family[name].items()}
        print(name, json.dumps(row), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(table, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
