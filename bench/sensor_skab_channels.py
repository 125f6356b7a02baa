"""SKAB one channel at a time, on the channels that carry each fault, beside the multichannel model.

Issue goal: a one-channel model should be within 10% of the multichannel F1 "on the channels that
carry the fault". Which channels carry a run's fault is decided from the labelled data alone, before
any model sees it: a channel carries the fault when, in that file, its values tell the labelled
anomaly samples from the normal ones (rank AUROC of the value, or of its distance from the normal
median, folded to >= 0.5) at least `--min-effect` (0.9 by default: 9 pairs in 10 ordered right).
Channels whose values do not move in a fault (SKAB's current, voltage and pressure never reach 0.6)
cannot be asked to find it alone.

For every such (file, channel) pair a one-channel model is fitted on the file's first rows with the
fit's defaults and replayed through the device task; the pairs are pooled (SKAB's point-wise
protocol) per channel and over all pairs. The multichannel model is fitted and replayed on the same
files for the reference F1.

    python -m bench.sensor_skab_channels --data /path/to/skab [--min-effect 0.9] [--variants onnx-int8]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.sensor_skab import _key, _load, _parser, fit_file, fit_options, replay_file, skab_files, task_config
from edge_agent.errors import EdgeAgentError


def folded_auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """The project's Mann-Whitney AUROC (ties half), folded so that 0.5 means no separation either way."""
    from edge_agent.tasks.defect.calibrate import auroc

    labels = np.concatenate([np.ones(len(positive), bool), np.zeros(len(negative), bool)])
    area = auroc(np.concatenate([positive, negative]), labels)
    return float(max(area, 1.0 - area))


def fault_effect(values: np.ndarray, labels: np.ndarray) -> float:
    """How well one channel's values alone separate a file's labelled anomaly samples from its normal ones."""
    fault = labels.astype(bool)
    if fault.all() or not fault.any():
        return 0.5
    centre = float(np.median(values[~fault]))
    level = folded_auroc(values[fault], values[~fault])
    spread = folded_auroc(np.abs(values[fault] - centre), np.abs(values[~fault] - centre))
    return max(level, spread)


@dataclass(frozen=True)
class Carrier:
    """One (file, channel) pair whose channel carries the file's fault."""

    path: Path
    channel: str


def carriers(paths: Sequence[Path], min_effect: float) -> tuple[list[Carrier], dict[str, dict[str, float]]]:
    """The carrying pairs, and every file's effect per channel (for the report)."""
    found, table = [], {}
    for path in paths:
        data = _load(path)
        effects = {name: fault_effect(data.values[:, i], data.labels) for i, name in enumerate(data.channels)}
        table[_key(path)] = {name: round(value, 3) for name, value in effects.items()}
        found += [Carrier(path, name) for name, value in effects.items() if value >= min_effect]
    return found, table


def _replay_runs(
    pairs: Sequence[tuple[Path, str | None]], work: Path, args: Any, variant: str, decide: str
) -> list[Any]:
    from edge_agent.tasks.sensor.evaluation import Run

    options, config, runs = fit_options(args), task_config(args, decide), []
    for path, channel in pairs:
        target = work / f"{_key(path)}_{channel or 'all'}".replace(" ", "_")
        fit_file(path, channel, args.train_rows, options, target)
        table, predicted = replay_file(path, channel, target, variant, config)
        runs.append(Run(table.labels, predicted, table.timestamps))
    return runs


def measure(args: Any, work: Path, found: list[Carrier], variant: str, decide: str) -> dict[str, Any]:
    """F1 per carrying channel, over all carrying pairs, and the multichannel model on the same files."""
    from edge_agent.tasks.sensor.evaluation import evaluate

    runs = _replay_runs([(c.path, c.channel) for c in found], work, args, variant, decide)
    files = sorted({c.path for c in found})
    reference = evaluate(_replay_runs([(p, None) for p in files], work, args, variant, decide)).as_dict()
    channels: dict[str, Any] = {}
    for name in sorted({c.channel for c in found}):
        mine = [run for run, c in zip(runs, found) if c.channel == name]
        channels[name] = {"pairs": len(mine), **evaluate(mine).as_dict()}
    pooled = evaluate(runs).as_dict()
    ratio = pooled["f1"] / reference["f1"] if reference["f1"] else 0.0
    return {"pairs": len(found), "files": len(files), "one_channel": pooled, "multichannel": reference,
            "ratio": round(ratio, 4), "channels": channels}  # fmt: skip


def markdown(report: dict[str, Any]) -> str:
    lines = [f"## SKAB, one channel alone on the channels that carry the fault (effect >= {report['min_effect']})", ""]
    lines += ["| variant | model | pairs | F1 | precision | recall | false alarms/day | mean delay s |"]
    lines += ["|---|---|---|---|---|---|---|---|"]
    for key, res in report["results"].items():
        rows = [("multichannel", res["files"], res["multichannel"])]
        rows += [("one channel, pooled", res["pairs"], res["one_channel"])]
        rows += [(name, r["pairs"], r) for name, r in res["channels"].items()]
        for label, count, r in rows:
            delay = "-" if r["mean_delay_s"] is None else f"{r['mean_delay_s']:.1f}"
            lines.append(f"| {key} | {label} | {count} | {r['f1']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | "
                         f"{r['false_alarms_per_day']:.1f} | {delay} |")  # fmt: skip
        lines.append(f"| {key} | one channel / multichannel F1 | | {res['ratio']:.3f} | | | | |")
    return "\n".join([*lines, "", f"Reproduce: `{report['command']}`", ""])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = _parser()
    p.prog, p.description = "python -m bench.sensor_skab_channels", __doc__.splitlines()[0]
    p.add_argument("--min-effect", type=float, default=0.9, help="a channel carries a fault from this effect on")
    p.set_defaults(variants="onnx-int8", decide_on="likelihood", out=Path("artifacts/bench/sensor_skab_channels"))
    args = p.parse_args(argv)
    if args.channel is not None:
        p.error("--channel: this bench picks the channels itself (use bench.sensor_skab for one channel)")
    started = time.monotonic()
    try:
        found, effects = carriers(skab_files(args.data), args.min_effect)
        with tempfile.TemporaryDirectory() as scratch:
            work = args.work or Path(scratch)
            results = {f"{v} {d}": measure(args, work, found, v, d)
                       for v in args.variants.split(",") for d in args.decide_on.split(",")}  # fmt: skip
    except (EdgeAgentError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = "python -m bench.sensor_skab_channels " + " ".join(argv)
    report = {"benchmark": "skab-one-channel-carrying", "command": command, "min_effect": args.min_effect,
              "seconds": round(time.monotonic() - started, 1), "effects": effects, "results": results}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    text = markdown(report)
    (args.out / "report.md").write_text(text, encoding="utf-8")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
