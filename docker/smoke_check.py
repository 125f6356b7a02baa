"""Build-time smoke check: import the runtimes, load every shipped model variant, run one inference on zeros.

Runs as the last step of docker/install.sh (so a broken image fails at build, not on a shelf) and in CI.
Exit 0 when everything loaded and ran, 1 when something failed, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_MODELS = Path("/opt/edge-agent/models")
RUNTIME_FORMATS = {"onnxruntime": "onnx", "litert": "tflite", "openvino": "onnx"}


@dataclass
class Outcome:
    """One line of the report."""

    ok: bool
    what: str
    detail: str


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS, help="folder holding models/<name>/")
    parser.add_argument("--runtimes", default="onnxruntime,litert", help="runtimes that must import (comma list)")
    parser.add_argument("--require-providers", default="", help="onnxruntime EPs that must be compiled in")
    parser.add_argument("--require-gstreamer", action="store_true", help="OpenCV must be built with GStreamer")
    parser.add_argument("--min-models", type=int, default=1, help="fail when fewer model folders are found")
    return parser.parse_args(argv)


def check_imports(runtimes: list[str], providers: list[str], gstreamer: bool) -> list[Outcome]:
    """Import each runtime and OpenCV; report versions, EPs and GStreamer support."""
    results = [_import_onnxruntime(providers)] if "onnxruntime" in runtimes else []
    if "litert" in runtimes:
        results.append(_import_litert())
    if "openvino" in runtimes:
        results.append(_import_openvino())
    results.append(_import_cv2(gstreamer))
    return results


def _import_onnxruntime(required: list[str]) -> Outcome:
    try:
        ort = importlib.import_module("onnxruntime")
    except ImportError as exc:
        return Outcome(False, "import onnxruntime", str(exc))
    available = list(ort.get_available_providers())
    missing = [p for p in required if p not in available]
    detail = f"{ort.__version__} providers={','.join(available)}"
    if missing:
        return Outcome(False, "import onnxruntime", f"{detail}; missing required {','.join(missing)}")
    return Outcome(True, "import onnxruntime", detail)


def _import_litert() -> Outcome:
    from edge_agent.errors import RuntimeUnavailableError
    from edge_agent.runtime.litert import import_interpreter

    try:
        _cls, package = import_interpreter()
    except RuntimeUnavailableError as exc:
        return Outcome(False, "import litert", str(exc))
    return Outcome(True, "import litert", f"{package} (XNNPACK delegate is built in)")


def _import_openvino() -> Outcome:
    try:
        ov = importlib.import_module("openvino")
    except ImportError as exc:
        return Outcome(False, "import openvino", str(exc))
    return Outcome(True, "import openvino", f"{ov.get_version()} devices={','.join(ov.Core().available_devices)}")


def _import_cv2(gstreamer: bool) -> Outcome:
    try:
        cv2 = importlib.import_module("cv2")
    except ImportError as exc:
        return Outcome(False, "import cv2", str(exc))
    has_gst = any("GStreamer" in line and "YES" in line for line in cv2.getBuildInformation().splitlines())
    detail = f"{cv2.__version__} gstreamer={'yes' if has_gst else 'no'}"
    if gstreamer and not has_gst:
        return Outcome(False, "import cv2", f"{detail}; this OpenCV cannot open CSI cameras (nvarguscamerasrc)")
    return Outcome(True, "import cv2", detail)


def model_dirs(root: Path) -> list[Path]:
    """Every folder under `root` with a manifest.yaml (models/build/ has none and is skipped)."""
    return sorted(path.parent for path in root.glob("*/manifest.yaml"))


def check_model(directory: Path, runtimes: list[str]) -> list[Outcome]:
    """Load each variant whose runtime is installed and run it once on zeros."""
    from edge_agent.errors import EdgeAgentError
    from edge_agent.runtime.manifest import load_manifest

    try:
        manifest = load_manifest(directory)
    except EdgeAgentError as exc:
        return [Outcome(False, directory.name, str(exc))]
    results = []
    for variant, entry in sorted(manifest.files.items()):
        kinds = [k for k, fmt in RUNTIME_FORMATS.items() if fmt == entry.format and k in runtimes]
        what = f"{manifest.name} {manifest.version} {variant}"
        if not kinds:
            results.append(Outcome(True, what, f"skipped: no {entry.format} runtime in this image"))
        # Every installed runtime that reads the format runs the file (onnx: onnxruntime and OpenVINO).
        results += [_run_variant(directory, variant, kind, what if i == 0 else f"{what} ({kind})")
                    for i, kind in enumerate(kinds)]  # fmt: skip
    return results


def _run_variant(directory: Path, variant: str, kind: str, what: str) -> Outcome:
    from edge_agent.config import LiteRTConfig, OnnxRuntimeConfig, OpenVINOConfig, RuntimeConfig
    from edge_agent.errors import EdgeAgentError
    from edge_agent.runtime.registry import load_model

    # CPU only: the build machine has no GPU, and TensorRT engines are built on the device at first start.
    config: RuntimeConfig = LiteRTConfig(kind="litert")
    if kind == "onnxruntime":
        config = OnnxRuntimeConfig(providers=["cpu"])
    elif kind == "openvino":
        config = OpenVINOConfig(kind="openvino")
    try:
        model = load_model(directory, variant, config, warmup=False)
        feeds = [np.zeros([d or 1 for d in spec.shape], dtype=spec.dtype) for spec in model.manifest.inputs]
        start = time.perf_counter()
        outputs = model.runtime.run(feeds)
        elapsed_ms = (time.perf_counter() - start) * 1000
        model.runtime.close()
    except EdgeAgentError as exc:
        return Outcome(False, what, str(exc))
    if len(outputs) != len(model.manifest.outputs):
        return Outcome(False, what, f"{len(outputs)} outputs, manifest declares {len(model.manifest.outputs)}")
    if not all(np.isfinite(out).all() for out in outputs):
        return Outcome(False, what, "non-finite values in the outputs for an all-zeros input")
    shapes = " ".join(str(list(out.shape)) for out in outputs)
    return Outcome(True, what, f"{kind} outputs {shapes} first run {elapsed_ms:.1f} ms")


def report(results: list[Outcome]) -> None:
    for item in results:
        sys.stdout.write(f"{'OK  ' if item.ok else 'FAIL'} {item.what}: {item.detail}\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    runtimes = [r for r in args.runtimes.split(",") if r]
    unknown = sorted(set(runtimes) - set(RUNTIME_FORMATS))
    if unknown:
        sys.stderr.write(f"smoke_check: unknown runtime(s) {', '.join(unknown)}; use {', '.join(RUNTIME_FORMATS)}\n")
        return 2
    providers = [p for p in args.require_providers.split(",") if p]
    results = check_imports(runtimes, providers, args.require_gstreamer)
    dirs = model_dirs(args.models)
    if len(dirs) < args.min_models:
        found = f"{len(dirs)} model folder(s) in {args.models}, need {args.min_models}"
        results.append(Outcome(False, "models", found))
    for directory in dirs:
        results.extend(check_model(directory, runtimes))
    report(results)
    failed = sum(not r.ok for r in results)
    summary = f"{len(results) - failed} ok, {failed} failed, {len(dirs)} model(s) in {args.models}"
    sys.stdout.write(f"smoke check: {summary}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
