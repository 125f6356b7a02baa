"""The patch recipe of `edge-agent fit defect`, step by step: read, check, fit, write, time, describe."""

from __future__ import annotations

import argparse
import re
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_agent.errors import DataError
from edge_agent.tasks.defect.fit import parse_size, require_fit_extra, say, warn
from edge_agent.tasks.defect.images import FEW_GOOD_IMAGES, MIN_GOOD_IMAGES, parse_roi
from edge_agent.tasks.defect.partsdata import PartInputs, choose_geometry, prepare, read_folder


def skipped_count(notes: list[str]) -> int:
    return sum(int(n) for note in notes for n in re.findall(r"skipped (\d+)", note))


def read_good(args: argparse.Namespace) -> tuple[PartInputs, Any, int]:
    """Good images as model inputs, the geometry chosen from them and how many files were skipped."""
    roi = parse_roi(args.roi) if args.roi else None
    size = parse_size(args.size)
    if size and (size[0] % 16 or size[1] % 16):
        raise DataError(f"--size {args.size}: width and height must be multiples of 16 (the feature maps' stride)")
    frames, names, notes = read_folder(args.good, "good", roi)
    for note in notes:
        warn(note)
    if len(frames) < MIN_GOOD_IMAGES:
        raise DataError(
            f"good folder {args.good}: {len(frames)} usable image(s); at least {MIN_GOOD_IMAGES} are needed "
            f"(aim for {FEW_GOOD_IMAGES}+ covering normal variation in lighting and position)"
        )
    if len(frames) < FEW_GOOD_IMAGES:
        warn(f"only {len(frames)} good images: the false-reject estimate is very uncertain; collect {FEW_GOOD_IMAGES}+")
    geometry = choose_geometry(frames, size, roi, args.orientation)
    return prepare(frames, names, geometry), geometry, skipped_count(notes)


def read_defects(args: argparse.Namespace, geometry: Any) -> PartInputs | None:
    if args.defects is None:
        return None
    frames, names, notes = read_folder(args.defects, "defects", geometry.roi)
    for note in notes:
        warn(note)
    return prepare(frames, names, geometry)


def summary(manifest: Any) -> str:
    default = manifest.metrics["variants"][manifest.default_variant]
    frr = default["false_reject_cv"]
    text = (f"threshold {manifest.thresholds['score']:.4f}: expected false rejects {frr['rate']:.1%}"
            f" (95% interval {frr['ci95_low']:.1%}-{frr['ci95_high']:.1%}, {frr['of']} good images)")  # fmt: skip
    miss = default.get("miss_known_defects")
    text += f"; misses on known defects {miss['rate']:.1%}" if miss else "; miss rate unknown (no --defects given)"
    return text + f"; int8 latency p95 {manifest.metrics.get('latency_p95_ms')} ms"


def run_patch(args: argparse.Namespace, argv: Sequence[str], name: str, bar: Any) -> int:
    from edge_agent.tasks.defect.latency import measure_in_subprocess
    from edge_agent.tasks.defect.patchcard import write_card
    from edge_agent.tasks.defect.patchfit import PatchSettings, fit_all
    from edge_agent.tasks.defect.patchmodel import FitRecord, add_latency, write_model

    started, cpu = time.monotonic(), time.process_time()
    good, geometry, skipped = read_good(args)
    defects = read_defects(args, geometry)
    require_fit_extra()
    w, h = geometry.size
    known = f" and {len(defects.names)} known defect(s)" if defects else ""
    kind = "grey" if geometry.channels == 1 else "colour"
    say(f"fitting on {len(good.names)} good image(s){known} at {w}x{h} {kind}")
    settings = PatchSettings(args.bank, args.folds, args.max_false_reject, args.seed, args.threads)
    paths, weights, fits, holder = fit_all(good.x, defects.x if defects else None, geometry, settings, bar)
    record = FitRecord(
        name, args.version, "edge-agent fit defect " + " ".join(shlex.quote(a) for a in argv), Path(args.good),
        len(good.names), len(defects.names) if defects else 0, skipped, time.monotonic() - started,
        time.process_time() - cpu, args.card_note,
    )  # fmt: skip
    manifest = write_model(args.out, record, geometry, paths, weights, fits, settings)
    if holder is not None:
        holder.cleanup()
    if args.latency_runs > 0:
        manifest = add_latency(args.out, manifest, measure_in_subprocess(args.out, runs=args.latency_runs))
    write_card(args.out, manifest, record)
    say(summary(manifest))
    say(f"done in {time.monotonic() - started:.0f}s: {args.out}")
    return 0
