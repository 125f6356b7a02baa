"""`edge-agent fit sensor`: fit an anomaly model for one machine from a CSV of its normal operation.

    edge-agent fit sensor --normal normal.csv --out models/pump-7 [--channels a,b,c] [--window 20m]

Writes models/NAME/ with manifest.yaml, model.onnx (fp32), model.int8.onnx, MODEL_CARD.md and, with
--tflite, model.int8.tflite. Needs onnx (the `train` extra; tensorflow-cpu for --tflite, torch for
--architecture mlp). Problems with the data that still give a usable model are printed as warnings.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import DataError, EdgeAgentError
from edge_agent.tasks.sensor import spacing
from edge_agent.tasks.sensor.dataio import SensorTable, read_sensor_csv
from edge_agent.tasks.sensor.durations import format_duration, parse_duration, samples_for
from edge_agent.tasks.sensor.fitting import LIKELIHOOD_THRESHOLD, Debounce, FitOptions, FitResult, fit_arrays
from edge_agent.tasks.sensor.training import ARCHITECTURES, TrainSettings

logger = logging.getLogger(__name__)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge-agent fit sensor",
        description="Fit a sensor anomaly model from normal data.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--normal", type=Path, required=True, help="CSV of normal operation: timestamp + channel columns")
    p.add_argument("--out", type=Path, required=True, help="model folder to create, e.g. models/pump-7")
    p.add_argument(
        "--channels", default=None, help="comma-separated channel columns in model order; None = every column"
    )
    p.add_argument(
        "--timestamp-column", default=None, help="timestamp column; None = the first of timestamp/datetime/time/ts"
    )
    p.add_argument("--window", default="20", help="window length: samples (20) or a time (20m, 90s, 2h)")
    p.add_argument("--stride", default="1", help="samples (or a time) between windows on the device")
    p.add_argument("--architecture", choices=ARCHITECTURES, default="linear", help="autoencoder kind")
    p.add_argument(
        "--latent", type=int, default=None, help="bottleneck size; None = 16 or window x channels / 2 if smaller"
    )
    p.add_argument("--quantile", type=float, default=0.995, help="quantile of normal scores for the raw threshold")
    p.add_argument("--margin", type=float, default=1.4, help="raw threshold = quantile x margin")
    p.add_argument(
        "--likelihood-threshold", type=float, default=LIKELIHOOD_THRESHOLD,
        help="calibrated likelihood above which a window is abnormal (0.999: about 0.1%% of normal windows)",
    )  # fmt: skip
    p.add_argument(
        "--min-duration",
        default=None,
        help="time over threshold before anomaly_start, e.g. 2m; None = the task's min_windows",
    )
    p.add_argument(
        "--clear-duration", default=None, help="calm time before anomaly_end, e.g. 10m; None = the task's clear_windows"
    )
    p.add_argument(
        "--level-test", choices=("auto", "on", "off"), default="auto",
        help="also test each window's mean level against normal (shifts, drifts); auto = on for one channel",
    )  # fmt: skip
    p.add_argument(
        "--recent-test", choices=("auto", "on", "off"), default="auto",
        help="also test the steps between samples against the typical step before them (level shifts, spikes "
        "within the normal range); auto = on for one channel",
    )  # fmt: skip
    p.add_argument(
        "--spectral-test", choices=("auto", "on", "off"), default="off",
        help="also test how salient the newest samples are in the spectral residual of the stretch before them "
        "(spikes, bursts); auto = on for one channel",
    )  # fmt: skip
    p.add_argument(
        "--reference", default=None,
        help="recent-change reference before each window: samples or a time (8h); None = 5 windows",
    )  # fmt: skip
    p.add_argument(
        "--adapt", default="auto",
        help="time constant of the device's online update of the normal levels on windows judged normal (frozen "
        "while an anomaly is pending or open), recorded in the manifest: a time (1d), off, or auto = 3d for one "
        "channel (real one-channel streams leave the range of a short fit), off for several",
    )  # fmt: skip
    p.add_argument("--name", default=None, help="model name; None = the folder name, lower-cased")
    p.add_argument("--version", default="1.0.0", help="model version")
    p.add_argument("--seed", type=int, default=0, help="seed of the MLP training")
    p.add_argument("--force", action="store_true", help="replace an existing model folder's files")
    p.add_argument("--tflite", action="store_true", help="also write model.int8.tflite (tensorflow-cpu, 20-50 s)")
    p.add_argument("--no-tflite", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for scripts
    return p


def model_name(args: argparse.Namespace) -> tuple[str, str | None]:
    """The model name and, when it had to be lower-cased, a note saying so."""
    given = args.name or args.out.name
    lowered = given.lower()
    return lowered, (f"model name {given!r} lower-cased to {lowered!r}" if lowered != given else None)


def _durations(args: argparse.Namespace) -> str | None:
    adapt = None if args.adapt in ("auto", "off") else args.adapt
    for flag, value in (
        ("--min-duration", args.min_duration),
        ("--clear-duration", args.clear_duration),
        ("--adapt", adapt),
    ):
        if value is None:
            continue
        try:
            parse_duration(value)
        except ValueError as exc:
            return f"{flag}: {exc}"
    for flag, value in (("--window", args.window), ("--stride", args.stride), ("--reference", args.reference)):
        if value is None:
            continue
        try:
            if not value.isdigit():
                parse_duration(value)
        except ValueError as exc:
            return f"{flag}: {exc} (or a number of samples)"
    return None


def _zero_adapt(text: str) -> bool:
    try:
        return text not in ("auto", "off") and parse_duration(text) <= 0
    except ValueError:
        return False  # not a duration at all: _durations says so


def _check(args: argparse.Namespace) -> str | None:
    """The first user mistake in the arguments, as one line, or None."""
    name, _ = model_name(args)
    problems = [
        (not args.normal.is_file(), f"--normal {args.normal}: no such file"),
        (not _NAME.match(name), f"model name {name!r} must be letters, digits, '.', '_' or '-'"),
        (args.window.isdigit() and int(args.window) < 2, "--window must be at least 2"),
        (args.stride.isdigit() and int(args.stride) < 1, "--stride must be at least 1"),
        (args.latent is not None and args.latent < 1, "--latent must be at least 1"),
        (not 0.5 <= args.quantile <= 1.0, "--quantile must be between 0.5 and 1"),
        (args.margin < 1.0, "--margin must be >= 1"),
        (_zero_adapt(args.adapt), "--adapt must be a time > 0 (1d), off or auto"),
        (not 0.5 <= args.likelihood_threshold < 1.0, "--likelihood-threshold must be in [0.5, 1), e.g. 0.999"),
        (
            (args.out / "manifest.yaml").exists() and not args.force,
            f"{args.out} already holds a model; pass --force to replace it",
        ),
    ]
    return next((message for failed, message in problems if failed), None) or _durations(args)


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
            f"- Likelihood (what events, dashboards and the device decide on): the share of normal windows "
            f"expected to score lower, calibrated on normal windows each scored by a network fitted without them; "
            f"threshold {m.thresholds['likelihood']} (about {100 * (1 - m.thresholds['likelihood']):.2g}% of normal "
            "windows pass it). A single channel far outside its normal range is enough to raise it.",
            *_recent_line(m.params),
            *_spectral_line(m.params),
            *_adapt_line(m.params),
            *(f"- Warning: {w}" for w in result.warnings),
            "",
            "Where it fails: behaviour absent from the normal data (a new product, a new load range, a season) "
            "scores as abnormal; refit with data that covers it. A sensor stuck at a plausible value is hard "
            "to see in a short window. Check the false-alarm rate on a day of normal data before relying on it.",
            "",
        ]
    )


def _adapt_line(params: dict[str, Any]) -> list[str]:
    adapt_s = params.get("decision", {}).get("adapt_s")
    if adapt_s is None:
        return []
    return [
        f"- Adaptation (device default, `adapt: null` in the task config turns it off): the normal levels follow "
        f"windows judged normal with a {format_duration(float(adapt_s))} time constant and are frozen while an "
        "anomaly is pending or open; a fault that creeps in slower than that can be learned as normal."
    ]


def _recent_line(params: dict[str, Any]) -> list[str]:
    recent = params.get("recent")
    if not isinstance(recent, dict):
        return []
    return [
        f"- Recent-change test (in the likelihood): the largest step between samples over the last two windows "
        f"against the typical step of the {recent['reference']} samples before them, so a level shift or a spike "
        "inside the normal range is seen within a window; a single step larger than any in the normal data is "
        "enough to raise it."
    ]


def _spectral_line(params: dict[str, Any]) -> list[str]:
    spectral = params.get("spectral")
    if not isinstance(spectral, dict):
        return []
    return [
        f"- Spectral-residual test (in the likelihood): the largest saliency of the last two windows in the "
        f"spectral residual of the stretch ending with them, against the mean saliency of the "
        f"{spectral['reference']} samples before them (spikes, bursts, abrupt changes of pattern)."
    ]


def _latent(args: argparse.Namespace, window: int, table: SensorTable) -> int:
    """The bottleneck: the one asked for (fitting clamps it, with a warning), else 16 or half the features."""
    if args.latent is not None:
        return int(args.latent)
    return max(1, min(TrainSettings().latent, window * len(table.channels) // 2))


def options_for(args: argparse.Namespace, table: SensorTable) -> FitOptions:
    """Fit settings from the arguments, times resolved with the data's measured sample period."""
    period = spacing.measure(table.timestamps).period_s
    window = samples_for(args.window, period, "--window")
    stride = samples_for(args.stride, period, "--stride")
    if window < 2:
        raise DataError(f"--window {args.window} is {window} sample(s) at {format_duration(period)} per sample; "
                        "give at least 2 samples")  # fmt: skip
    debounce = Debounce(
        parse_duration(args.min_duration) if args.min_duration is not None else None,
        parse_duration(args.clear_duration) if args.clear_duration is not None else None,
    )
    return FitOptions(
        window=window,
        stride=stride,
        train=TrainSettings(architecture=args.architecture, latent=_latent(args, window, table), seed=args.seed),
        quantile=args.quantile,
        margin=args.margin,
        name=model_name(args)[0],
        version=args.version,
        tflite=args.tflite,
        debounce=debounce,
        likelihood_threshold=args.likelihood_threshold,
        window_text=None if args.window.isdigit() else args.window,
        level_test=args.level_test,
        recent_test=args.recent_test,
        spectral_test=args.spectral_test,
        reference=samples_for(args.reference, period, "--reference") if args.reference is not None else None,
        adapt=args.adapt,
    )


def run(args: argparse.Namespace) -> FitResult:
    channels = args.channels.split(",") if args.channels else None
    table = read_sensor_csv(args.normal, channels, args.timestamp_column)
    options = options_for(args, table)
    result = fit_arrays(
        table.values, table.channels, args.out, options, source=args.normal.name, timestamps=table.timestamps
    )
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
    note = model_name(args)[1]
    if note:
        sys.stderr.write(f"note: {note}\n")
    try:
        result = run(args)
    except EdgeAgentError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    for warning in result.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    threshold = result.manifest.thresholds["score"]
    sys.stdout.write(
        f"wrote {args.out}/ (window {result.params.size} samples, raw threshold {threshold:.4f}, likelihood "
        f"threshold {result.manifest.thresholds['likelihood']}, {len(result.normal_scores)} normal windows)\n"
    )
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    raise SystemExit(main())
