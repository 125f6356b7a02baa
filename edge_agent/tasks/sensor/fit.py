"""`edge-agent fit sensor`: fit an anomaly model for one machine from a CSV of its normal operation.

    edge-agent fit sensor --normal normal.csv --out models/pump-7 [--channels a,b,c] [--window 20]

Writes models/NAME/ with manifest.yaml, model.onnx (fp32), model.int8.onnx, model.int8.tflite and
MODEL_CARD.md. Needs the `train` extra (onnx, tensorflow-cpu; torch only for --architecture mlp).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge_agent.errors import EdgeAgentError
from edge_agent.tasks.sensor.dataio import SensorTable, read_sensor_csv
from edge_agent.tasks.sensor.fitting import FitOptions, FitResult, fit_arrays
from edge_agent.tasks.sensor.training import ARCHITECTURES, TrainSettings

logger = logging.getLogger(__name__)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge-agent fit sensor", description="Fit a sensor anomaly model from normal data."
    )
    p.add_argument("--normal", type=Path, required=True, help="CSV of normal operation: timestamp + channel columns")
    p.add_argument("--out", type=Path, required=True, help="model folder to create, e.g. models/pump-7")
    p.add_argument("--channels", default=None, help="comma-separated channel columns in model order (default: all)")
    p.add_argument("--timestamp-column", default=None, help="timestamp column (default: timestamp/datetime/time/ts)")
    p.add_argument("--window", type=int, default=20, help="window length in samples")
    p.add_argument("--stride", type=int, default=1, help="samples between windows on the device")
    p.add_argument("--architecture", choices=ARCHITECTURES, default="linear", help="autoencoder kind")
    p.add_argument("--latent", type=int, default=16, help="bottleneck size")
    p.add_argument("--quantile", type=float, default=0.995, help="quantile of normal scores for the threshold")
    p.add_argument("--margin", type=float, default=1.4, help="threshold = quantile x margin")
    p.add_argument("--name", default=None, help="model name (default: the folder name)")
    p.add_argument("--version", default="1.0.0")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace an existing model folder's files")
    p.add_argument("--no-tflite", action="store_true", help="skip the TFLite file (no tensorflow-cpu needed)")
    return p


def _check(args: argparse.Namespace) -> str | None:
    """The first user mistake in the arguments, as one line, or None."""
    name = args.name or args.out.name
    problems = [
        (not args.normal.is_file(), f"--normal {args.normal}: no such file"),
        (not _NAME.match(name), f"model name {name!r} must be lower-case letters, digits, '.', '_' or '-'"),
        (args.window < 2, "--window must be at least 2"),
        (args.stride < 1, "--stride must be at least 1"),
        (args.latent < 1, "--latent must be at least 1"),
        (not 0.5 <= args.quantile <= 1.0, "--quantile must be between 0.5 and 1"),
        (args.margin < 1.0, "--margin must be >= 1"),
        (
            (args.out / "manifest.yaml").exists() and not args.force,
            f"{args.out} already holds a model; pass --force to replace it",
        ),
    ]
    return next((message for failed, message in problems if failed), None)


def model_card(result: FitResult, table: SensorTable, source: Path) -> str:
    """A short card for a user-fitted model: what it saw, how the threshold was set, what to watch."""
    m = result.manifest
    span_h = (table.timestamps[-1] - table.timestamps[0]) / 3600 if len(table.timestamps) > 1 else 0.0
    scores = result.normal_scores
    fit = m.params["fit"]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            f"# {m.name} {m.version}",
            "",
            f"Fitted {when} by `edge-agent fit sensor` from `{source.name}`: {len(table.values)} normal samples "
            f"over {span_h:.1f} h, channels {', '.join(result.params.channels)}.",
            "",
            f"- Model: {fit['architecture']} window autoencoder, window {result.params.size} samples, "
            f"bottleneck {fit['latent']}; files {', '.join(m.files)} (int8: static QDQ ONNX, full-integer TFLite).",
            "- Score: mean over channels of |window - reconstruction| divided by that channel's mean normal error "
            "(1.0 = a typical normal window).",
            f"- Threshold {m.thresholds['score']:.4f} = {fit['quantile']} quantile of the normal scores "
            f"x {fit['margin']}. "
            f"Normal scores: median {np.median(scores):.3f}, 99th percentile {np.quantile(scores, 0.99):.3f}, "
            f"max {scores.max():.3f}.",
            "",
            "Where it fails: behaviour absent from the normal data (a new product, a new load range, a season) "
            "scores as abnormal; refit with data that covers it. A sensor stuck at a plausible value is hard "
            "to see in a short window. Check the false-alarm rate on a day of normal data before relying on it.",
            "",
        ]
    )


def run(args: argparse.Namespace) -> FitResult:
    channels = args.channels.split(",") if args.channels else None
    table = read_sensor_csv(args.normal, channels, args.timestamp_column)
    options = FitOptions(
        window=args.window,
        stride=args.stride,
        train=TrainSettings(architecture=args.architecture, latent=args.latent, seed=args.seed),
        quantile=args.quantile,
        margin=args.margin,
        name=args.name or args.out.name,
        version=args.version,
        tflite=not args.no_tflite,
    )
    result = fit_arrays(table.values, table.channels, args.out, options, source=args.normal.name)
    (args.out / "MODEL_CARD.md").write_text(model_card(result, table, args.normal), encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point of `edge-agent fit sensor`; user mistakes print one line to stderr and return 2."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed its one-line usage error (or --help)
        return int(exc.code) if isinstance(exc.code, int) else 2
    problem = _check(args)
    if problem:
        sys.stderr.write(f"error: {problem}\n")
        return 2
    try:
        result = run(args)
    except EdgeAgentError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    threshold = result.manifest.thresholds["score"]
    sys.stdout.write(f"wrote {args.out}/ (threshold {threshold:.4f}, {len(result.normal_scores)} normal windows)\n")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    raise SystemExit(main())
