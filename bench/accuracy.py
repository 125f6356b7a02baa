"""Accuracy per model file from each job's own accuracy benchmark, and the int8 / fp32 ratio.

Real data sets are used when their paths are given (SKAB, KolektorSDD, Grocery Store for held-out
composed shelves); otherwise the jobs' shipped synthetic sets. Each job's evaluation code is called
as a function where it exposes one; a job's data-set benchmark that needs its own fitting runs as a
subprocess with --json. Runs in its own process (`python -m bench.accuracy`) like the latency cases.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import EdgeAgentError
from edge_agent.runtime.manifest import Manifest, load_manifest

Values = dict[str, tuple[float, dict[str, Any]]]  # variant -> (metric value, details)


@dataclass(frozen=True)
class AccuracyOptions:
    """Data-set paths (None: synthetic sets) and set sizes; plain data so it crosses processes as JSON."""

    skab: str | None = None
    kolektor: str | None = None
    grocery: str | None = None
    fit_python: str | None = None  # interpreter with the train extra, for the data-set benchmarks that fit
    samples: int = 200  # frames / shelves / windows scale; the tiny mode uses a handful
    seed: int = 0


@dataclass
class Measured:
    dataset: str
    metric: str
    values: Values
    note: str | None = None


def reference_variant(manifest: Manifest, variants: list[str]) -> str | None:
    """The full-precision model int8 is compared with: onnx-fp32, else any fp32 file."""
    if "onnx-fp32" in variants:
        return "onnx-fp32"
    fp32 = [v for v in variants if manifest.files[v].precision == "fp32"]
    return fp32[0] if fp32 else None


def with_ratios(manifest: Manifest, measured: Measured) -> dict[str, Any]:
    ref = reference_variant(manifest, list(measured.values))
    ref_value = measured.values[ref][0] if ref else None
    variants = {}
    for name, (value, details) in measured.values.items():
        ratio = round(value / ref_value, 4) if ref_value else None
        entry = manifest.files[name]
        variants[name] = {"precision": entry.precision, "format": entry.format, "value": round(value, 4),
                          "ratio_to_fp32": ratio, "details": details}  # fmt: skip
    return {"status": "ok", "dataset": measured.dataset, "metric": measured.metric, "reference": ref,
            "note": measured.note, "error": None, "variants": variants}  # fmt: skip


# ---------------------------------------------------------------- per job


def _classify(model_dir: Path, manifest: Manifest, variants: list[str], opts: AccuracyOptions) -> Measured:
    """Test classifiers have random weights and no labelled set: agreement of top-1 with the fp32 file."""
    from bench.latency import runtime_config
    from bench.workload import build_workload
    from edge_agent.runtime.registry import load_model
    from edge_agent.tasks.preprocess import ImagePreprocessor

    source = build_workload(manifest, opts.samples, opts.seed + 1).source
    pre = ImagePreprocessor(manifest.inputs[0])
    feeds = [pre(source(i).data)[0].copy() for i in range(opts.samples)]
    top1: dict[str, np.ndarray] = {}
    for v in variants:
        model = load_model(model_dir, v, runtime_config(manifest.files[v].format, 1))
        top1[v] = np.array([int(np.argmax(model.runtime.run([f])[0])) for f in feeds])
        model.runtime.close()
    ref = reference_variant(manifest, variants) or variants[0]
    values = {v: (float((top1[v] == top1[ref]).mean()), {"frames": len(feeds)}) for v in variants}
    note = "no labelled set for this model: top-1 agreement with the fp32 file on synthetic frames"
    return Measured("synthetic frames", "top1_agreement_with_fp32", values, note)


def _defect(model_dir: Path, manifest: Manifest, variants: list[str], opts: AccuracyOptions) -> Measured:
    if opts.kolektor:
        table = _from_subprocess("bench.defect_kolektor", ["--data", opts.kolektor])["variants"]
        found = {v: (float(table[v]["image_auroc"]), table[v]) for v in variants if v in table}
        note = "the model bench.defect_kolektor fitted on KolektorSDD (artifacts/defect-kolektor), not the shipped one"
        return Measured("KolektorSDD val split", "image_auroc", found, note)
    import tempfile

    from edge_agent.tasks.defect.evaluate import figures, run_variant
    from edge_agent.tasks.defect.synth import write_set

    # The job's own evaluation set: write_set(seed 12), unseen by the fit (its training parts use seed 11).
    each = max(2, min(100, opts.samples // 2))
    spec = manifest.inputs[0]
    dims = spec.shape[1:3] if spec.layout == "NHWC" else spec.shape[2:4]  # a patch defect model's input is NHWC
    h, w = int(dims[0] or 1), int(dims[1] or 1)
    with tempfile.TemporaryDirectory() as tmp:
        write_set(Path(tmp), good=each, defects=each, size=256, seed=12)
        frames, labels, masks = _load_parts(Path(tmp), w, h)
    values: Values = {}
    for v in variants:
        fig = figures(manifest, run_variant(model_dir, v, frames), labels, masks)
        values[v] = (float(fig["image_auroc"]), fig)
    dataset = f"{each} good and {each} defective synthetic parts (edge_agent.tasks.defect.synth.write_set, seed 12)"
    return Measured(dataset, "image_auroc", values)


def _load_parts(folder: Path, width: int, height: int) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray | None]]:
    """good/*.jpg and defects/*.jpg with masks/*.png at the model's input size, as the job's build reads them."""
    import cv2

    frames: list[np.ndarray] = []
    masks: list[np.ndarray | None] = []
    labels: list[bool] = []
    for kind in ("good", "defects"):
        for path in sorted((folder / kind).glob("*.jpg")):
            frames.append(_read(cv2.imread(str(path), cv2.IMREAD_COLOR), path))
            labels.append(kind == "defects")
            if kind == "good":
                masks.append(None)
                continue
            mask_path = folder / "masks" / f"{path.stem}.png"
            mask = _read(cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE), mask_path)
            masks.append((cv2.resize(mask, (width, height), interpolation=cv2.INTER_AREA) > 64).astype(np.uint8))
    return frames, np.array(labels), masks


def _read(image: np.ndarray | None, path: Path) -> np.ndarray:
    if image is None:
        raise EdgeAgentError(f"{path}: cannot read the image")
    return image


def _shelf(model_dir: Path, manifest: Manifest, variants: list[str], opts: AccuracyOptions) -> Measured:
    from bench.shelf_accuracy import evaluate, held_out

    frames = held_out(Path(opts.grocery) if opts.grocery else None, max(4, opts.samples // 2))
    values = {}
    for v in variants:
        fig = evaluate(model_dir, v, frames)
        values[v] = (float(fig["map50"]), fig)
    source = "Grocery Store held-out photos" if opts.grocery else "procedural products"
    return Measured(f"{len(frames)} held-out composed shelves ({source})", "map50", values)


def _sensor(model_dir: Path, manifest: Manifest, variants: list[str], opts: AccuracyOptions) -> Measured:
    if opts.skab:
        fit = ["--fit-python", opts.fit_python] if opts.fit_python else []
        table = _from_subprocess("bench.sensor_skab", ["--data", opts.skab, "--variants", ",".join(variants), *fit])
        note = "SKAB outlier protocol: bench.sensor_skab fits one model per file on its first rows, not the shipped one"
        return Measured("SKAB (all labelled runs)", "f1", {v: (float(table[v]["f1"]), table[v]) for v in table}, note)
    from edge_agent.tasks.sensor import synth
    from edge_agent.tasks.sensor.config import SensorAnomalyTaskConfig
    from edge_agent.tasks.sensor.evaluation import Run, evaluate
    from edge_agent.tasks.sensor.replay import make_task, replay

    # The model card's held-out protocol (seed 3, a fault every 30 min), 24 h in the full mode.
    seconds = int(min(24 * 3600, max(1800, 24 * 3600 * opts.samples / 200)))
    faults = max(2, round(48 * seconds / 86_400))
    table = synth.generate(seconds, seed=3, faults=synth.schedule(seconds, np.random.default_rng(3 + 10_000), faults))
    if table.labels is None:
        raise EdgeAgentError("the synthetic recording has no labels")
    values: Values = {}
    for v in variants:
        task = make_task(model_dir, v, SensorAnomalyTaskConfig(kind="sensor_anomaly"), "bench")
        predicted = replay(task, table.timestamps, table.values).predicted
        task.model.runtime.close()
        report = evaluate([Run(table.labels, predicted, table.timestamps)]).as_dict()
        values[v] = (float(report["f1"]), report)
    dataset = f"synthetic machine (edge_agent.tasks.sensor.synth, seed 3, {seconds / 3600:.1f} h, {faults} faults)"
    return Measured(dataset, "f1", values, "point-wise F1 through the device's task at stride 1")


JOBS: dict[str, Callable[[Path, Manifest, list[str], AccuracyOptions], Measured]] = {
    "classify": _classify,
    "defect": _defect,
    "shelf": _shelf,
    "sensor_anomaly": _sensor,
}


def _from_subprocess(module: str, args: list[str]) -> Any:
    """A job benchmark that fits its own model on a data set: run it and read its --json output."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", module, *args, "--json", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
        if done.returncode != 0 or not out.is_file():
            raise EdgeAgentError(f"{' '.join(cmd[2:4])} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        return json.loads(out.read_text())


def measure_accuracy(model_dir: Path, variants: list[str], opts: AccuracyOptions) -> dict[str, Any]:
    """The accuracy entry of one model; failures become an error entry, never an exception."""
    start = time.perf_counter()
    try:
        manifest = load_manifest(model_dir)
        job = JOBS.get(manifest.task)
        if job is None:
            raise EdgeAgentError(f"no accuracy benchmark for task {manifest.task!r}")
        if not variants:
            raise EdgeAgentError("no variant of this model ran, nothing to measure")
        result = with_ratios(manifest, job(model_dir, manifest, variants, opts))
    except (EdgeAgentError, ImportError, ValueError, KeyError, OSError, RuntimeError) as exc:
        result = {"status": "error", "error": f"{type(exc).__name__}: {exc}", "variants": {}}
    result["duration_s"] = round(time.perf_counter() - start, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="model folder")
    parser.add_argument("--variants", required=True, help="comma-separated variants")
    parser.add_argument("--options", default="{}", help="AccuracyOptions as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    opts = AccuracyOptions(**json.loads(args.options))
    result = measure_accuracy(args.model, [v for v in args.variants.split(",") if v], opts)
    print(json.dumps(result))
    return 0


def options_json(opts: AccuracyOptions) -> str:
    return json.dumps(asdict(opts))


if __name__ == "__main__":
    raise SystemExit(main())
