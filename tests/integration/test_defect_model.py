"""The shipped defect model (patch features + memory bank) through the real runtimes and DefectTask, on the
demo's synthetic parts."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.config import LiteRTConfig, OnnxRuntimeConfig
from edge_agent.runtime.manifest import load_manifest
from edge_agent.runtime.registry import load_model
from edge_agent.tasks.base import Item, TaskContext, TaskOutput
from edge_agent.tasks.defect.config import DefectTaskConfig
from edge_agent.tasks.defect.task import DefectTask

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "defect-synthetic"
DEMO = REPO / "examples" / "data" / "defect_demo"


def demo_parts() -> list[tuple[str, np.ndarray]]:
    paths = sorted(DEMO.glob("part_*.jpg"))
    assert len(paths) >= 24, "examples/data/defect_demo should hold the demo parts"
    return [(p.name, cv2.imread(str(p), cv2.IMREAD_COLOR)) for p in paths]


def judge_all(variant: str, runtime: OnnxRuntimeConfig | LiteRTConfig) -> list[tuple[str, TaskOutput]]:
    model = load_model(MODEL, variant, runtime)
    task = DefectTask(DefectTaskConfig(kind="defect"), model, TaskContext("line", "site", "dev"))
    results = []
    for k, (name, frame) in enumerate(demo_parts()):
        item = Item(frame, time.time(), "folder", k, {"filename": name})
        out = task.logic(task.decode(task.run(task.preprocess([item])), [item])[0], item)
        results.append((name, out))
    return results


def test_manifest_declares_three_variants_and_measured_figures() -> None:
    manifest = load_manifest(MODEL)
    assert set(manifest.files) == {"onnx-fp32", "onnx-int8", "tflite-int8"}
    assert manifest.default_variant == "onnx-int8" and manifest.thresholds["score"] > 0
    assert "synthetic_eval" in manifest.metrics and (MODEL / "MODEL_CARD.md").is_file()


@pytest.mark.parametrize(
    ("variant", "runtime"),
    [("onnx-int8", OnnxRuntimeConfig()), ("tflite-int8", LiteRTConfig(kind="litert"))],
)
def test_demo_good_parts_pass_and_defective_parts_fail(variant: str, runtime: OnnxRuntimeConfig | LiteRTConfig) -> None:
    results = judge_all(variant, runtime)
    good = [out for name, out in results if name.endswith("_good.jpg")]
    bad = [out for name, out in results if not name.endswith("_good.jpg")]
    assert all(out.data is not None for _, out in results)
    passed_good = sum(out.data.passed for out in good)  # type: ignore[union-attr]
    failed_bad = sum(not out.data.passed for out in bad)  # type: ignore[union-attr]
    # the demo shows an operator every good part passing and every defect (missing features too) failing
    assert passed_good == len(good), f"{len(good) - passed_good} of {len(good)} good parts rejected"
    assert failed_bad == len(bad), f"{len(bad) - failed_bad} of {len(bad)} defective parts passed"


def test_every_failed_part_raises_a_defect_event_with_a_bounded_heatmap_snapshot() -> None:
    failed = [(name, out) for name, out in judge_all("onnx-int8", OnnxRuntimeConfig()) if not out.data.passed]  # type: ignore[union-attr]
    assert failed
    for name, out in failed:
        [event] = out.events
        assert event.subject == name and event.details["score"] >= event.details["threshold"]
        assert event.snapshot_jpeg is not None and len(event.snapshot_jpeg) <= 100_000
        snapshot = cv2.imdecode(np.frombuffer(event.snapshot_jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert snapshot is not None and snapshot.shape[:2] == (256, 256)
        assert out.data is not None and out.data.defect_box is not None


def test_int8_variants_agree_with_fp32() -> None:
    verdicts = {
        v: [out.data.passed for _, out in judge_all(v, rt)]  # type: ignore[union-attr]
        for v, rt in [
            ("onnx-fp32", OnnxRuntimeConfig()),
            ("onnx-int8", OnnxRuntimeConfig()),
            ("tflite-int8", LiteRTConfig(kind="litert")),
        ]
    }
    for variant in ("onnx-int8", "tflite-int8"):
        agree = np.mean(np.array(verdicts[variant]) == np.array(verdicts["onnx-fp32"]))
        assert agree >= 0.9, f"{variant} agrees with fp32 on only {agree:.0%} of parts"
