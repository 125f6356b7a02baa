"""The fit itself: train, export three variants, check they agree, calibrate the threshold, write the folder."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_agent.errors import ModelError
from edge_agent.runtime.manifest import InputSpec, Manifest, ModelFile, TensorSpec, sha256_file, write_manifest
from edge_agent.tasks.defect import calibrate
from edge_agent.tasks.defect.anomalies import add_anomalies
from edge_agent.tasks.defect.card import write_card
from edge_agent.tasks.defect.export import (
    INPUT_NAME,
    OUTPUT_NAMES,
    export_onnx,
    export_tflite,
    quantize_onnx,
)
from edge_agent.tasks.defect.images import ImageSet
from edge_agent.tasks.defect.net import MAP_STRIDE, TrainSettings, train

logger = logging.getLogger(__name__)


class FitProgress(Protocol):
    """Where the fit reports training steps and stage notes (the CLI prints them on stderr)."""

    def __call__(self, step: int, total: int, loss: float, elapsed: float) -> None: ...

    def note(self, text: str) -> None: ...


FILES = {
    "onnx-fp32": ("defect_fp32.onnx", "onnx", "fp32"),
    "onnx-int8": ("defect_int8.onnx", "onnx", "int8"),
    "tflite-int8": ("defect_int8.tflite", "tflite", "int8"),
}
CALIBRATION_IMAGES = 64


def normalisation(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of the good images in 0..1 units."""
    flat = images.reshape(-1, images.shape[3]).astype(np.float64) / 255.0
    return flat.mean(axis=0), np.maximum(flat.std(axis=0), 1e-3)


def to_inputs(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """N x H x W x C uint8 -> N x C x H x W float32, exactly as ImagePreprocessor normalises."""
    x = (images.astype(np.float32) / 255.0 - mean.astype(np.float32)) / std.astype(np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)


def calibration_images(images: np.ndarray, seed: int) -> np.ndarray:
    """Good images and, for half of them, the same with synthetic defects, so int8 ranges cover high scores."""
    rng = np.random.default_rng(seed + 1)
    pick = rng.choice(len(images), min(CALIBRATION_IMAGES, len(images)), replace=False)
    out = []
    for k, i in enumerate(pick):
        image = images[i]
        if k % 2:
            donor = images[int(rng.integers(len(images)))]
            image, _ = add_anomalies(image, donor, rng, count=2)
        out.append(image)
    return np.stack(out)


@dataclass
class VariantScores:
    scores: np.ndarray
    maps: list[np.ndarray] = field(default_factory=list)


def run_variant(path: Path, fmt: str, x: np.ndarray) -> VariantScores:
    """Scores (and maps) of one exported file on preprocessed inputs, one image per call as on the device."""
    if fmt == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        outs = [session.run(None, {INPUT_NAME: item[None]}) for item in x]
    else:
        tf = importlib.import_module("tensorflow")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice; LiteRT is what devices run
            interp = tf.lite.Interpreter(model_path=str(path), num_threads=1)
        interp.allocate_tensors()
        inp, det = interp.get_input_details()[0], interp.get_output_details()
        outs = []
        for item in x:
            interp.set_tensor(inp["index"], item[None])
            interp.invoke()
            outs.append([interp.get_tensor(d["index"]).copy() for d in det])
    result = VariantScores(np.zeros(len(x)))
    for k, pair in enumerate(outs):
        amap, score = sorted(pair, key=lambda a: -a.ndim)  # the map is 4-D, the score 2-D
        result.scores[k] = float(score.ravel()[0])
        result.maps.append(amap[0, 0])
    return result


def check_exports(net: Any, x: np.ndarray, fp32: VariantScores) -> None:
    """Refuse an fp32 ONNX whose scores differ from torch's (an export that marks everything abnormal)."""
    torch = importlib.import_module("torch")
    from edge_agent.tasks.defect.net import build_export_wrapper

    with torch.no_grad():
        wrapper = build_export_wrapper(net, x.shape[2], x.shape[3])
        ref = torch.cat([wrapper(torch.from_numpy(item[None]))[1] for item in x[:8]])
    gap = float(np.abs(ref.numpy().ravel() - fp32.scores[:8]).max())
    if gap > 1e-3:
        raise ModelError(f"exported fp32 ONNX scores differ from torch by {gap:.4f}; the export is broken")


def latency_ms(int8_path: Path, spec: InputSpec, frame: np.ndarray, threshold: float, runs: int = 200) -> list[float]:
    """Preprocess + int8 ONNX + decision per item, one thread, as the daemon runs it."""
    import onnxruntime as ort

    from edge_agent.tasks.preprocess import ImagePreprocessor

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(int8_path), sess_options=options, providers=["CPUExecutionProvider"])
    pre = ImagePreprocessor(spec)
    times = []
    for k in range(runs + 10):
        t0 = time.perf_counter()
        buffer, _ = pre(frame)
        _amap, score = session.run(None, {INPUT_NAME: buffer})
        _passed = float(score.ravel()[0]) < threshold
        if k >= 10:
            times.append((time.perf_counter() - t0) * 1000.0)
    return times


def build_manifest(
    name: str, args: argparse.Namespace, spec: InputSpec, files: dict[str, ModelFile], threshold: float,
    params: dict[str, Any], metrics: dict[str, Any],
) -> Manifest:  # fmt: skip
    h, w = spec.shape[2], spec.shape[3]
    assert h is not None and w is not None
    return Manifest(
        name=name, version=args.version, task="defect",
        description="Anomaly model fitted on good parts only: image score and anomaly map (edge-agent fit defect)",
        files=files, default_variant="onnx-int8", inputs=[spec],
        outputs=[
            TensorSpec(name=OUTPUT_NAMES[0], shape=[1, 1, h // MAP_STRIDE, w // MAP_STRIDE]),
            TensorSpec(name=OUTPUT_NAMES[1], shape=[1, 1]),
        ],
        decoder="anomaly_map_score", thresholds={"score": round(threshold, 6)}, params=params, metrics=metrics,
    )  # fmt: skip


def _figures(
    variants: dict[str, VariantScores], n_good: int, threshold: float, frr: float
) -> dict[str, dict[str, float]]:
    figures = {}
    for key, result in variants.items():
        labels = np.r_[np.zeros(n_good), np.ones(len(result.scores) - n_good)]
        v = calibrate.verdicts(result.scores, labels, threshold)
        entry = {"holdout_false_reject_rate": round(v.false_reject_rate, 4)}
        if len(result.scores) > n_good:
            entry |= {
                "defect_auroc": round(calibrate.auroc(result.scores, labels), 4),
                "defect_miss_rate": round(v.miss_rate, 4),
                "f1": round(v.f1, 4),
                f"miss_rate_at_{frr:g}_frr": round(calibrate.miss_rate_at_frr(result.scores, labels, frr), 4),
            }
        figures[key] = entry
    return figures


def fit_model(
    args: argparse.Namespace, name: str, good: ImageSet, defects: ImageSet | None, size: tuple[int, int],
    channels: int, progress: FitProgress, command: str,
) -> str:  # fmt: skip
    """Train on the good split, export, evaluate on held-out good (+ known defects), write the model folder."""
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(good.names))
    n_hold = max(4, round(args.holdout * len(order)))
    hold, fit_idx = order[:n_hold], order[n_hold:]
    train_images = good.images[fit_idx]
    mean, std = normalisation(train_images)
    settings = TrainSettings(args.steps, args.batch, args.crop, width=args.width, threads=args.threads, seed=args.seed)
    net = train(train_images, mean, std, settings, progress)
    spec = InputSpec(
        name=INPUT_NAME, shape=[1, channels, size[1], size[0]], layout="NCHW",
        color="GRAY" if channels == 1 else "BGR", scale=1 / 255,
        mean=[round(float(m), 6) for m in mean], std=[round(float(s), 6) for s in std],
    )  # fmt: skip
    mean, std = np.array(spec.mean), np.array(spec.std)  # the rounded values the device will use
    evaluation = good.images[hold] if defects is None else np.concatenate([good.images[hold], defects.images])
    x_eval = to_inputs(evaluation, mean, std)
    calib = to_inputs(calibration_images(train_images, args.seed), mean, std)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths = {key: work / fname for key, (fname, _f, _p) in FILES.items()}
        progress.note("exporting fp32 ONNX, int8 ONNX (QDQ) and int8 TFLite ...")
        export_onnx(net, channels, size, paths["onnx-fp32"])
        quantize_onnx(paths["onnx-fp32"], paths["onnx-int8"], calib)
        export_tflite(net, channels, size, paths["tflite-int8"], calib)
        variants = {key: run_variant(paths[key], FILES[key][1], x_eval) for key in FILES}
        check_exports(net, x_eval, variants["onnx-fp32"])
        args.out.mkdir(parents=True, exist_ok=True)
        for path in paths.values():
            shutil.copyfile(path, args.out / path.name)
    int8 = variants["onnx-int8"].scores
    threshold, method = calibrate.choose_threshold(int8[:n_hold], int8[n_hold:] if defects else None, args.frr)
    frame = good.images[hold[0]]
    frame_bgr = np.repeat(frame, 3, axis=2) if channels == 1 else frame
    times = latency_ms(args.out / FILES["onnx-int8"][0], spec, frame_bgr, threshold)
    metrics: dict[str, Any] = {
        "good_images": len(good.names), "holdout_good": n_hold,
        "known_defects": len(defects.names) if defects else 0,
        "threshold_method": method, "latency_p50_ms": round(float(np.percentile(times, 50)), 3),
        "latency_p95_ms": round(float(np.percentile(times, 95)), 3),
        "variants": _figures(variants, n_hold, threshold, args.frr),
    }  # fmt: skip
    files = {
        key: ModelFile(path=fname, sha256=sha256_file(args.out / fname), format=fmt, precision=prec)
        for key, (fname, fmt, prec) in FILES.items()
    }
    params: dict[str, Any] = {
        "roi": [int(v) for v in args.roi.split(",")] if args.roi else None, "map_stride": MAP_STRIDE,
        "train": {"steps": settings.steps, "batch": settings.batch, "crop": settings.crop, "width": settings.width,
                  "seed": settings.seed, "images": len(fit_idx)},
    }  # fmt: skip
    manifest = build_manifest(name, args, spec, files, threshold, params, metrics)
    write_manifest(args.out, manifest)
    write_card(args.out, manifest, command, args.good, args.card_note, os.cpu_count() or 1)
    return f"threshold {threshold:.4f} ({method}); int8 latency p95 {metrics['latency_p95_ms']} ms"
