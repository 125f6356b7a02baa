"""SKAB accuracy benchmark of the sensor anomaly job: int8 ONNX, int8 TFLite and fp32 side by side.

Protocol of SKAB's published outlier leaderboard (its notebooks): for every labelled experiment file,
fit a model on the file's first 400 rows (normal operation), score the whole file, and count
point-wise TP/FP/FN over all labelled files together; F1 = TP / (TP + (FP + FN) / 2).
Here the fit is `edge-agent fit sensor`'s own code and the scoring is the device's task (window
scores, hysteresis, minimum duration), so the figures are what a device would report.

    python -m bench.sensor_skab --data /path/to/skab [--fit-python /path/with/train-extra/python]

SKAB (waico/SKAB, GPL-3.0) is read in place and never copied.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edge_agent.errors import EdgeAgentError

VARIANTS = ("onnx-fp32", "onnx-int8", "tflite-int8")
SETTINGS: tuple[str, ...] = ("train_rows", "window", "latent", "architecture", "quantile", "margin")
SETTINGS += ("min_windows", "clear_windows", "clear_ratio", "adapt", "channel", "max_gap", "level_test", "recent_test")
SETTINGS += ("spectral_test",)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.sensor_skab", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="SKAB data folder (valve1/, valve2/, other/)")
    p.add_argument("--out", type=Path, default=Path("artifacts/bench/sensor_skab"), help="report folder")
    p.add_argument("--work", type=Path, default=None, help="folder for the per-file models (temporary if omitted)")
    p.add_argument(
        "--fit-python",
        default=os.environ.get("EDGE_AGENT_FIT_PYTHON", sys.executable),
        help="python with the train extra (onnx, tensorflow); default $EDGE_AGENT_FIT_PYTHON or this python",
    )
    p.add_argument("--json", type=Path, default=None, help="also write {variant: figures} to this JSON file")
    p.add_argument("--train-rows", type=int, default=400, help="normal rows at the start of each file to fit on")
    p.add_argument("--window", type=int, default=20)
    p.add_argument("--latent", type=int, default=16)
    p.add_argument("--architecture", choices=("linear", "mlp"), default="linear")
    p.add_argument("--quantile", type=float, default=0.995)
    p.add_argument("--margin", type=float, default=1.4)
    p.add_argument("--min-windows", type=int, default=None, help="None: the task's default for what it decides on")
    p.add_argument("--clear-windows", type=int, default=None, help="None: the task's default for what it decides on")
    p.add_argument("--clear-ratio", type=float, default=0.8)
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated model variants")
    p.add_argument(
        "--decide-on", default="score,likelihood", help="comma-separated: what the state follows (score, likelihood)"
    )
    p.add_argument("--max-gap", type=float, default=None, help="sample periods beyond which a step is a gap")
    p.add_argument(
        "--adapt", default=None, help="adaptation time constant (e.g. 1h) or off; the model's (fit's) when omitted"
    )
    p.add_argument("--level-test", choices=("auto", "on", "off"), default="auto", help="fit sensor's --level-test")
    p.add_argument("--recent-test", choices=("auto", "on", "off"), default="auto", help="fit sensor's --recent-test")
    p.add_argument("--spectral-test", choices=("auto", "on", "off"), default="off", help="fit sensor's --spectral-test")
    p.add_argument("--channel", default=None, help="replay one channel alone (fit and score it by itself)")
    p.add_argument("--fit-only", action="store_true", help=argparse.SUPPRESS)
    return p


def skab_files(root: Path) -> list[Path]:
    """Every labelled experiment file (anomaly-free.csv has no labels and is not scored)."""
    files = sorted(p for p in root.glob("*/*.csv") if p.parent.name != "anomaly-free")
    if not files:
        raise FileNotFoundError(f"{root}: no SKAB experiment files (expected valve1/*.csv, valve2/*.csv, other/*.csv)")
    return files


def _key(path: Path) -> str:
    return f"{path.parent.name}_{path.stem}"


def _load(path: Path) -> Any:
    from edge_agent.tasks.sensor.dataio import read_sensor_csv

    return read_sensor_csv(path, timestamp_column="datetime")


def fit_all(args: argparse.Namespace, work: Path) -> None:
    """Fit one model per experiment file on its first rows (runs where the train extra is installed)."""
    options = fit_options(args)
    for path in skab_files(args.data):
        target = fit_file(path, args.channel, args.train_rows, options, work / _key(path))
        print(f"fitted {path.parent.name}/{path.name} -> {target}", flush=True)


def fit_options(args: argparse.Namespace) -> Any:
    """FitOptions from the bench's settings (the fit's own code, not a copy of it)."""
    from edge_agent.tasks.sensor.fitting import FitOptions
    from edge_agent.tasks.sensor.training import TrainSettings

    return FitOptions(
        window=args.window,
        train=TrainSettings(architecture=args.architecture, latent=args.latent),
        quantile=args.quantile,
        margin=args.margin,
        name="skab-file",
        tflite="tflite-int8" in args.variants.split(","),
        level_test=args.level_test,
        recent_test=args.recent_test,
        spectral_test=args.spectral_test,
    )


def fit_file(path: Path, channel: str | None, train_rows: int, options: Any, target: Path) -> Path:
    """Fit one model on a file's first rows: all channels, or one channel alone."""
    from edge_agent.tasks.sensor.fitting import fit_arrays

    table = _load(path)
    rows = slice(0, train_rows)
    values, channels = _select(table, channel)
    fit_arrays(values[rows], channels, target, options, source=str(path), timestamps=table.timestamps[rows])
    return target


def _select(table: Any, channel: str | None) -> tuple[Any, list[str]]:
    """All channels, or one channel alone (the univariate path)."""
    if channel is None:
        return table.values, table.channels
    index = table.channels.index(channel)
    return table.values[:, index : index + 1], [channel]


def task_config(args: argparse.Namespace, decide_on: str) -> Any:
    """The device task's settings for a replay (the model's own defaults where the bench sets none)."""
    from edge_agent.tasks.sensor.config import SensorAnomalyTaskConfig

    counts = {"min_windows": args.min_windows, "clear_windows": args.clear_windows}
    adapt = {} if args.adapt is None else {"adapt": None if args.adapt == "off" else args.adapt}
    return SensorAnomalyTaskConfig(
        kind="sensor_anomaly",
        **{key: value for key, value in counts.items() if value is not None},
        **adapt,
        clear_ratio=args.clear_ratio,
        batch_size=256,
        decide_on=decide_on,
        max_gap=args.max_gap,
    )


def replay_file(path: Path, channel: str | None, model: Path, variant: str, config: Any) -> tuple[Any, Any]:
    """Replay one file through the device task; (the labelled table, the task's 0/1 states per sample)."""
    from edge_agent.tasks.sensor.replay import make_task, replay

    table = _load(path)
    assert table.labels is not None
    values, _ = _select(table, channel)
    return table, replay(make_task(model, variant, config), table.timestamps, values).predicted


def evaluate_variant(args: argparse.Namespace, work: Path, variant: str, decide_on: str) -> dict[str, Any]:
    """Replay every file through the task with this variant; report all points and the part after training."""
    from edge_agent.tasks.sensor.evaluation import Run, evaluate

    config = task_config(args, decide_on)
    runs, tails = [], []
    for path in skab_files(args.data):
        table, predicted = replay_file(path, args.channel, work / _key(path), variant, config)
        runs.append(Run(table.labels, predicted, table.timestamps))
        cut = args.train_rows
        tails.append(Run(table.labels[cut:], predicted[cut:], table.timestamps[cut:]))
    return {"all": evaluate(runs).as_dict(), "after_training_rows": evaluate(tails).as_dict(), "files": len(runs)}


def markdown(results: dict[str, dict[str, Any]], command: str) -> str:
    rows = [
        "| variant | F1 | precision | recall | FAR % | false alarms/day | mean delay s | detected |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant, res in results.items():
        r = res["all"]
        delay = "-" if r["mean_delay_s"] is None else f"{r['mean_delay_s']:.1f}"
        rows.append(
            f"| {variant} | {r['f1']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | {r['far_pct']:.2f} | "
            f"{r['false_alarms_per_day']:.1f} | {delay} | {r['detected']}/{r['anomalies']} |"
        )
    lines = ["## SKAB outlier detection (all labelled files, point-wise)", "", *rows, ""]
    for key in results:
        variant, _, decide_on = key.partition(" ")
        fp32 = results.get(f"onnx-fp32 {decide_on}", {}).get("all", {}).get("f1")
        if fp32 and variant != "onnx-fp32":
            lines.append(f"- {key} F1 / fp32 F1 = {results[key]['all']['f1'] / fp32:.4f}")
    lines += ["", f"Reproduce: `{command}`", ""]
    return "\n".join(lines)


def _run_fit(args: argparse.Namespace, argv: list[str], work: Path) -> None:
    command = [args.fit_python, "-m", "bench.sensor_skab", *argv, "--fit-only", "--work", str(work)]
    subprocess.run(command, check=True, cwd=Path(__file__).resolve().parents[1])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if not args.data.is_dir():
        print(f"error: --data {args.data} is not a folder (give the SKAB data folder)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        try:
            if args.fit_only:
                fit_all(args, work)
                return 0
            started = time.monotonic()
            clean = [a for a in argv if a != "--fit-only"]
            _run_fit(args, clean, work)
            results = {
                f"{v} {d}": evaluate_variant(args, work, v, d)
                for v in args.variants.split(",")
                for d in args.decide_on.split(",")
            }
        except (EdgeAgentError, FileNotFoundError, subprocess.CalledProcessError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    command = "python -m bench.sensor_skab " + " ".join(argv)
    report = {"benchmark": "skab-outlier", "command": command, "seconds": round(time.monotonic() - started, 1)}
    report["settings"] = {key: getattr(args, key) for key in SETTINGS}
    report["results"] = results
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "skab.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    text = markdown(results, command)
    (args.out / "skab.md").write_text(text, encoding="utf-8")
    if args.json is not None:
        flat = {variant: res["all"] for variant, res in results.items()}
        args.json.write_text(json.dumps(flat, indent=2), encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
