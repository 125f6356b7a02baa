"""Optional peer comparison: the same ONNX detector through Ultralytics' `predict()`, when it is installed.

Never installs anything and never affects the verdicts. Runs in its own process because Ultralytics
imports torch, whose thread pool would slow down everything else in the process (FIELD_NOTES).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.fingerprint import cpu_info, load_average

NOTE = ("The same ONNX file through Ultralytics' predict() (its own letterbox, NMS and result objects) on the same "
        "frames, one at a time, 1 thread on our side; Ultralytics picks its own threads.")  # fmt: skip


def compare(models: list[dict[str, Any]], settings: Any) -> dict[str, Any]:
    if importlib.util.find_spec("ultralytics") is None:
        return {"status": "skipped", "note": "Ultralytics is not installed in this environment (not installed by the "
                "benchmark on purpose); pip install ultralytics to add the comparison", "results": []}  # fmt: skip
    results = []
    for model in models:
        if model.get("task") != "shelf":
            continue
        for case in model["cases"]:
            if case["format"] != "onnx" or case["threads"] != 1 or case.get("status") != "ok":
                continue
            row = _run_peer(model, case["variant"], settings)
            row.update(ours_p50_ms=case["e2e"]["p50_ms"], ours_p95_ms=case["e2e"]["p95_ms"])
            results.append(row)
    if not results:
        return {"status": "skipped", "note": "no ONNX detector ran in this run", "results": []}
    return {"status": "ok", "note": NOTE, "results": results}


def _run_peer(model: dict[str, Any], variant: str, settings: Any) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.peers", "--model", model["path"], "--variant", variant,
           "--iterations", str(settings.iterations), "--warmup", str(settings.warmup)]  # fmt: skip
    root = Path(__file__).resolve().parents[1]
    row: dict[str, Any] = {"model": model["name"], "variant": variant, "p50_ms": None, "p95_ms": None}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=root, check=False)
        row.update(json.loads(done.stdout.strip().splitlines()[-1]))
    except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as exc:
        row["error"] = f"Ultralytics run failed: {exc}"
    return row


def _measure(model_dir: Path, variant: str, iterations: int, warmup: int) -> dict[str, Any]:
    from ultralytics import YOLO  # type: ignore[import-not-found,unused-ignore]

    from bench.workload import build_workload
    from edge_agent.runtime.manifest import load_manifest

    manifest = load_manifest(model_dir)
    workload = build_workload(manifest, 8, 0)
    size = int(manifest.inputs[0].shape[-1] or 640)
    detector = YOLO(str(model_dir / manifest.files[variant].path), task="detect")
    times = []
    for i in range(warmup + iterations):
        t0 = time.perf_counter()
        frame = workload.source(i).data  # the JPEG decode is in our end-to-end figure too
        detector.predict(frame, imgsz=size, verbose=False)
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000.0)
    arr = np.asarray(times)
    return {"p50_ms": round(float(np.percentile(arr, 50)), 3), "p95_ms": round(float(np.percentile(arr, 95)), 3),
            "iterations": len(times)}  # fmt: skip


def dense_main(argv: list[str]) -> int:
    """python -m bench.peers dense --onnx yolov8n.onnx --peer-python BUILD_VENV/bin/python [--out DIR]"""
    import tempfile

    from edge_agent.models_import import import_model

    p = argparse.ArgumentParser(prog="python -m bench.peers dense", description=DENSE_NOTE)
    p.add_argument("--onnx", type=Path, required=True, help="a YOLOv8n ONNX exported by Ultralytics (fixed size)")
    p.add_argument("--peer-python", type=Path, required=True, help="a Python with ultralytics installed")
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU for both (Ultralytics' default)")
    p.add_argument("--out", type=Path, default=Path("bench/results"))
    args = p.parse_args(argv)
    load_start = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = work / "dense-yolov8n"
        model_dir.mkdir()
        size = _input_size(args.onnx)
        dense_onnx(args.onnx, model_dir / "model.onnx", dense_table(size))
        import_model(model_dir / "model.onnx", "shelf", None, None, None, False)
        frames = dense_frames(work)
        ours = measure_ours(model_dir, frames, args.iterations, args.iou)
        cmd = [str(args.peer_python), "-m", "bench.peers", "ultralytics-dense", str(model_dir / "model.onnx"),
               str(work), str(args.iterations), str(args.iou), str(size)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
        try:
            peer = json.loads(done.stdout.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            peer = {"error": (done.stderr or done.stdout)[-500:]}
    report = {"note": DENSE_NOTE, "input": size, "iterations": args.iterations, "cpu": cpu_info(),
              "load": {"start": load_start, "end": load_average()}, "ratios": dense_ratios(ours, peer),
              "ours": ours, "ultralytics": peer}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "peers_dense.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


def dense_ratios(ours: dict[str, Any], peer: dict[str, Any]) -> dict[str, float]:
    """The goals' ratios: our end to end against our bare session.run, and against Ultralytics' (p50 and p95)."""
    out = {f"e2e_over_bare_{q}": round(ours["e2e"][f"{q}_ms"] / ours["bare"][f"{q}_ms"], 3) for q in ("p50", "p95")}
    if "e2e" in peer:
        for q in ("p50", "p95"):
            out[f"e2e_over_ultralytics_{q}"] = round(ours["e2e"][f"{q}_ms"] / peer["e2e"][f"{q}_ms"], 3)
            out[f"post_over_ultralytics_{q}"] = round(ours["post"][f"{q}_ms"] / peer["post"][f"{q}_ms"], 3)
    return out


def _input_size(onnx_path: Path) -> int:
    import onnx

    dims = onnx.load(str(onnx_path)).graph.input[0].type.tensor_type.shape.dim
    return int(dims[-1].dim_value)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["dense"]:
        return dense_main(argv[1:])
    if argv[:1] == ["ultralytics-dense"]:
        onnx_path, folder, iterations, iou, size = argv[1:6]
        frames = sorted(Path(folder).glob("frame-*.jpg"))
        print(json.dumps(measure_ultralytics(Path(onnx_path), frames, int(iterations), float(iou), int(size))))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--variant", required=True)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    args = p.parse_args(argv)
    try:
        out = _measure(args.model, args.variant, args.iterations, args.warmup)
    except Exception as exc:  # noqa: BLE001 - a third-party package's failure is reported, never raised
        out = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(out))
    return 0


# ---------------------------------------------------------------- dense frames beside Ultralytics

DENSE_NOTE = (
    "Post-processing on dense shelves: a YOLOv8n exported from Ultralytics' yaml (no pretrained weights can be "
    "reached) whose output gets a fixed dense table added inside the graph (output = model * 0 + table), so both "
    "pipelines run the full network and then decode the same ~450 candidates of ~200 products (several "
    "overlapping candidates each, 80 classes). Both at 1 thread (Ultralytics' ONNX session is given 1 thread)."
)


def dense_table(size: int, seed: int = 0, products: int = 200, per_product: float = 2.25) -> np.ndarray:
    """[1, 84, N] YOLOv8 output of a dense shelf: rows of products, each seen by a few jittered candidates."""
    rng = np.random.default_rng(seed)
    n = sum((size // s) ** 2 for s in (8, 16, 32))
    table = np.zeros((84, n), np.float32)
    table[4:] = rng.uniform(0.0, 0.2, (80, n))  # background: every class below the 0.25 threshold
    table[0:2] = rng.uniform(0, size, (2, n))
    table[2:4] = rng.uniform(4, 20, (2, n))
    rows, cols = 8, products // 8
    top = size * (1 - 720 / 1280) / 2  # the 1280x720 frames fill the middle of the letterboxed input
    w, h = size / cols, (size - 2 * top) / rows
    slots = rng.permutation(n)
    used = 0
    for k in range(products):
        cx, cy = (k % cols + 0.5) * w, top + (k // cols + 0.5) * h
        cls = int(rng.integers(0, 8))
        for _ in range(max(1, int(rng.poisson(per_product - 1)) + 1)):
            j = slots[used]
            used += 1
            table[0:4, j] = [cx + rng.normal(0, 0.5), cy + rng.normal(0, 1), w * 0.9 * rng.uniform(0.95, 1.05),
                             h * 0.9 * rng.uniform(0.95, 1.05)]  # fmt: skip
            table[4 + cls, j] = rng.uniform(0.3, 0.95)
    return table[None]


def dense_onnx(src: Path, dst: Path, table: np.ndarray) -> None:
    """The exported model with its output replaced by model * 0 + table (the network still runs in full)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    out = graph.output[0].name
    for node in graph.node:
        node.output[:] = [f"{name}_net" if name == out else name for name in node.output]
    graph.initializer.extend([numpy_helper.from_array(table, "dense_table"),
                              numpy_helper.from_array(np.zeros(1, np.float32), "dense_zero")])  # fmt: skip
    graph.node.extend([helper.make_node("Mul", [f"{out}_net", "dense_zero"], [f"{out}_zero"]),
                       helper.make_node("Add", [f"{out}_zero", "dense_table"], [out])])  # fmt: skip
    onnx.save(model, str(dst))


def dense_frames(folder: Path, count: int = 8) -> list[Path]:
    """1280x720 JPEG shelves (procedural products) that both pipelines read from disk."""
    import cv2

    from edge_agent.tasks.shelf.compose import ProductLibrary, ShelfComposer

    composer = ShelfComposer(ProductLibrary.procedural(seed=2))
    rng = np.random.default_rng(2)
    paths = []
    for i in range(count):
        path = folder / f"frame-{i}.jpg"
        cv2.imwrite(str(path), cv2.resize(composer.compose(rng).image, (1280, 720)))
        paths.append(path)
    return paths


def percentiles(times: list[float]) -> dict[str, float]:
    arr = np.asarray(times)
    return {"p50_ms": round(float(np.percentile(arr, 50)), 3), "p95_ms": round(float(np.percentile(arr, 95)), 3)}


def measure_ours(model_dir: Path, frames: list[Path], iterations: int, iou: float) -> dict[str, Any]:
    """Our shelf path stage by stage (letterbox, session.run, decode + NMS + frame boxes), and bare
    session.run on the same buffer, interleaved so machine load hits both alike."""
    import cv2

    from edge_agent.config import OnnxRuntimeConfig
    from edge_agent.runtime.registry import load_model
    from edge_agent.tasks.detection import DecodeSpec, get_decoder
    from edge_agent.tasks.preprocess import ImagePreprocessor
    from edge_agent.tasks.shelf.task import to_frame

    model = load_model(model_dir, None, OnnxRuntimeConfig(intra_op_threads=1))
    pre = ImagePreprocessor(model.manifest.inputs[0], letterbox=True)
    spec = DecodeSpec.from_manifest(model.manifest, iou_threshold=iou)
    decoder = get_decoder(model.manifest.decoder)
    stages: dict[str, list[float]] = {"pre": [], "run": [], "post": [], "e2e": [], "bare": []}
    kept = candidates = 0
    pictures = [cv2.imread(str(path)) for path in frames]  # decoding the JPEG is the camera's job: not timed
    for i in range(iterations + 5):
        frame = pictures[i % len(pictures)]
        t0 = time.perf_counter()
        buffer, box = pre(frame)
        t1 = time.perf_counter()
        outputs = model.runtime.run([buffer])
        t2 = time.perf_counter()
        found = to_frame(decoder(outputs, spec)[0], box, frame.shape[1], frame.shape[0])
        t3 = time.perf_counter()
        model.runtime.run([buffer])
        t4 = time.perf_counter()
        if i >= 5:
            for key, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t3 - t0, t4 - t3)):
                value_ms = value * 1000
                stages[key].append(value_ms)
        kept = len(found)
        candidates = int((outputs[0][0, 4:].max(axis=0) >= spec.score_threshold).sum())
    return {**{k: percentiles(v) for k, v in stages.items()}, "kept": kept, "candidates": candidates}


def measure_ultralytics(onnx_path: Path, frames: list[Path], iterations: int, iou: float, size: int) -> dict[str, Any]:
    """Ultralytics' predict() on the same file and frames; its session and torch at 1 thread."""
    import cv2
    import onnxruntime as ort
    import torch
    from ultralytics import YOLO  # type: ignore[import-not-found,unused-ignore]

    torch.set_num_threads(1)
    original = ort.InferenceSession.__init__

    def one_thread(self: Any, path: Any, sess_options: Any = None, *args: Any, **kwargs: Any) -> None:
        sess_options = sess_options or ort.SessionOptions()
        sess_options.intra_op_num_threads = sess_options.inter_op_num_threads = 1
        original(self, path, sess_options, *args, **kwargs)

    ort.InferenceSession.__init__ = one_thread  # type: ignore[method-assign]
    detector = YOLO(str(onnx_path), task="detect")
    stages: dict[str, list[float]] = {"pre": [], "run": [], "post": [], "e2e": []}
    kept = 0
    pictures = [cv2.imread(str(path)) for path in frames]
    for i in range(iterations + 5):
        frame = pictures[i % len(pictures)]
        t0 = time.perf_counter()
        result = detector.predict(frame, imgsz=size, conf=0.25, iou=iou, max_det=300, verbose=False)[0]
        elapsed = (time.perf_counter() - t0) * 1000
        if i >= 5:
            speed = result.speed
            for key, value in zip(stages, (speed["preprocess"], speed["inference"], speed["postprocess"], elapsed)):
                stages[key].append(float(value))
        kept = len(result.boxes)
    return {**{k: percentiles(v) for k, v in stages.items()}, "kept": kept}


if __name__ == "__main__":
    raise SystemExit(main())
