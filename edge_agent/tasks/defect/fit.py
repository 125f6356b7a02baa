"""`edge-agent fit defect`: fit a defect model for a product from photos of good parts.

The default recipe (`--recipe patch`) compares patches of pretrained MobileNetV2 features with a memory
bank of good-part patches: no training, seconds to minutes on one core, needs the `fit` extra (onnx,
tflite2onnx). `--recipe autoencoder` is the earlier recipe (a network trained from scratch on synthetic
defects, needs the `train` extra: torch and TensorFlow); it stays for one release so that a site can
refit an existing model the old way and compare, and is not the default because it measured worse on
every real data set we have (see models/defect-synthetic/MODEL_CARD.md).
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import logging
import re
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edge_agent.errors import DataError, EdgeAgentError, RuntimeUnavailableError
from edge_agent.tasks.defect.images import FEW_GOOD_IMAGES, MIN_GOOD_IMAGES, ImageSet, load_folder, parse_roi

logger = logging.getLogger(__name__)

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge-agent fit defect",
        description="Fit an int8 defect model for one product from photos of good parts "
        "(optionally a folder of known defects to set the threshold and measure misses).",
    )
    p.add_argument("--recipe", choices=("patch", "autoencoder"), default="patch",
                   help="patch: pretrained patch features + memory bank (default, no training); "
                   "autoencoder: the earlier trained recipe (needs the train extra)")  # fmt: skip
    p.add_argument("--max-false-reject", "--frr", dest="max_false_reject", type=float, default=0.01,
                   help="share of good parts the threshold may reject (default 0.01 = 1%%)")  # fmt: skip
    p.add_argument("--orientation", choices=("auto", "none"), default="none",
                   help="auto: parts lying the other way are turned a quarter turn (patch recipe)")  # fmt: skip
    p.add_argument("--bank", type=int, default=2048, help="memory bank size in patches (patch recipe)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds for the threshold (patch recipe)")
    p.add_argument("--latency-runs", type=int, default=200,
                   help="items timed on the written model for the card's latency (0: not timed)")  # fmt: skip
    p.add_argument("--good", type=Path, required=True, help="folder of images of good parts")
    p.add_argument("--defects", type=Path, help="optional folder of images of defective parts (threshold only)")
    p.add_argument("--out", type=Path, required=True, help="model folder to write, e.g. models/my-part")
    p.add_argument("--name", help="model name (default: the --out folder name)")
    p.add_argument("--version", default="1.0.0", help="model version written to the manifest")
    p.add_argument("--size", help="model input WIDTHxHEIGHT, multiples of 16 (default: the images' size reduced to "
                   "at most 256x256 pixels of area, aspect kept)")  # fmt: skip
    p.add_argument("--roi", help="x,y,width,height crop applied to every image before fitting (and at run time)")
    p.add_argument("--steps", type=int, default=1500, help="training steps (autoencoder recipe)")
    p.add_argument("--batch", type=int, default=16, help="crops per training step (autoencoder recipe)")
    p.add_argument("--crop", type=int, default=128, help="training crop side in input pixels (autoencoder recipe)")
    p.add_argument("--width", type=int, default=16, help="channels of the first layer (autoencoder recipe)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for fitting")
    p.add_argument("--seed", type=int, default=0, help="random seed (fits are reproducible)")
    p.add_argument("--holdout", type=float, default=0.2, help="share of good images held out (autoencoder recipe)")
    p.add_argument("--card-note", default="", help="extra paragraph for MODEL_CARD.md (data licence, caveats)")
    p.add_argument("--force", action="store_true", help="overwrite an existing model folder")
    return p


def check_args(args: argparse.Namespace) -> None:
    """User mistakes found before any image is read become DataError with one clear line."""
    for name, low in (("steps", 1), ("batch", 1), ("crop", 16), ("width", 4), ("threads", 1), ("bank", 64),
                      ("folds", 2)):  # fmt: skip
        if getattr(args, name) < low:
            raise DataError(f"--{name} must be >= {low}")
    if not 0 < args.max_false_reject < 0.5:
        raise DataError("--max-false-reject must be between 0 and 0.5 (e.g. 0.01 for 1%)")
    args.frr = args.max_false_reject  # the autoencoder recipe's name for it
    if not 0.05 <= args.holdout <= 0.5:
        raise DataError("--holdout must be between 0.05 and 0.5")
    if args.out.exists() and any(args.out.iterdir()) and not args.force:
        raise DataError(f"--out {args.out} exists and is not empty; pass --force to overwrite it")
    if args.out.exists() and not args.out.is_dir():
        raise DataError(f"--out {args.out} is a file, not a folder")


def parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    match = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not match:
        raise DataError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 160x160")
    w, h = int(match.group(1)), int(match.group(2))
    if w % 8 or h % 8 or not (32 <= w <= 2048 and 32 <= h <= 2048):
        raise DataError(f"--size {text!r}: width and height must be multiples of 8 between 32 and 2048")
    return w, h


def model_name(args: argparse.Namespace) -> str:
    name = args.name or re.sub(r"[^a-z0-9_.-]+", "-", args.out.resolve().name.lower()).strip("-.")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name or ""):
        raise DataError(f"model name {name!r}: use lower-case letters, digits, '.', '_' and '-' (set --name)")
    return name


def require_fit_extra() -> None:
    """The patch recipe cuts the backbone with onnx and tflite2onnx; say so before any feature is extracted."""
    missing = [name for name in ("onnx", "tflite2onnx", "tqdm") if importlib.util.find_spec(name) is None]
    if missing:
        raise RuntimeUnavailableError(
            f"fitting a defect model needs {', '.join(missing)}: pip install 'edge-agent[fit]'"
        )


@contextmanager
def fit_lock(out: Path) -> Iterator[None]:
    """Refuse at once a second fit into the same --out while one runs (the OS drops the lock if a fit dies)."""
    out.resolve().parent.mkdir(parents=True, exist_ok=True)
    path = out.resolve().parent / f".{out.resolve().name}.fit.lock"
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(
                f"--out {out}: another fit into this folder is running (lock {path}); wait for it or pick another --out"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            path.unlink(missing_ok=True)


def require_train_extra() -> None:
    """Fail before training, not after it, when an exporter is missing."""
    missing = [name for name in ("torch", "tensorflow", "onnx") if importlib.util.find_spec(name) is None]
    if missing:
        raise RuntimeUnavailableError(
            f"fitting a defect model needs {', '.join(missing)}: pip install 'edge-agent[train]' (CPU: torch==2.13.0)"
        )


def warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def load_inputs(args: argparse.Namespace) -> tuple[ImageSet, ImageSet | None, tuple[int, int], int]:
    roi = parse_roi(args.roi) if args.roi else None
    # Always 3 channels: grey cameras deliver B = G = R, and one input layout keeps the runtime path simple.
    good, warnings, size, channels = load_folder(args.good, "good", parse_size(args.size), 3, roi)
    for text in warnings:
        warn(text)
    n = len(good.names)
    if n < MIN_GOOD_IMAGES:
        raise DataError(
            f"good folder {args.good}: {n} usable image(s); at least {MIN_GOOD_IMAGES} are needed "
            f"(aim for {FEW_GOOD_IMAGES}+ covering normal variation in lighting and position)"
        )
    if n < FEW_GOOD_IMAGES:
        warn(f"only {n} good images: the threshold rests on very few held-out images; collect {FEW_GOOD_IMAGES}+")
    defects = None
    if args.defects is not None:
        defects, more, _, _ = load_folder(args.defects, "defects", size, channels, roi)
        for text in more:
            warn(text)
    return good, defects, size, channels


class ProgressLine:
    """Training progress on stderr: one rewritten line on a terminal, a line per 10% otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last_decile = -1

    def __call__(self, step: int, total: int, loss: float, elapsed: float) -> None:
        eta = elapsed / step * (total - step)
        text = f"training {step}/{total} ({100 * step // total}%) loss {loss:.4f} eta {eta:4.0f}s"
        if self.tty:
            print(f"\r{text}", end="\n" if step == total else "", file=sys.stderr, flush=True)
        elif (decile := 10 * step // total) != self.last_decile:
            self.last_decile = decile
            print(text, file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)


def progress_bar(total: int, label: str) -> Any:
    tqdm = importlib.import_module("tqdm").tqdm  # a fit-extra dependency, checked by require_fit_extra
    return tqdm(total=total, desc=label, file=sys.stderr, unit="step", dynamic_ncols=True, mininterval=1.0)


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    if args.recipe == "patch":
        from edge_agent.tasks.defect.patchrun import run_patch

        return run_patch(args, argv, model_name(args), progress_bar)
    return run_autoencoder(args, argv)


def run_autoencoder(args: argparse.Namespace, argv: Sequence[str]) -> int:
    started = time.monotonic()
    good, defects, size, channels = load_inputs(args)
    require_train_extra()
    from edge_agent.tasks.defect.fitting import fit_model  # torch and tensorflow are imported from here on

    print(
        f"fitting on {len(good.names)} good image(s)"
        + (f" and {len(defects.names)} known defect(s)" if defects else "")
        + f" at {size[0]}x{size[1]}",
        file=sys.stderr,
    )
    command = "edge-agent fit defect " + " ".join(shlex.quote(a) for a in argv)
    report = fit_model(args, model_name(args), good, defects, size, channels, ProgressLine(), command)
    print(report, file=sys.stderr)
    print(f"done in {time.monotonic() - started:.0f}s: {args.out}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage line; return its code instead of exiting
        return int(exc.code or 0)
    try:
        with fit_lock(args.out):
            check_args(args)
            return run(args, argv)
    except EdgeAgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted; the model folder may be incomplete", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
