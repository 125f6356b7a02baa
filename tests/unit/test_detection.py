"""Detection decoders and NMS against hand-made output tensors."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.errors import ModelError
from edge_agent.runtime.manifest import InputSpec, Manifest, ModelFile, TensorSpec
from edge_agent.tasks.detection import FEW_BOXES, MAX_ROUNDS, DecodeSpec, box_iou, get_decoder, greedy_keep, nms, select
from edge_agent.tasks.preprocess import Letterbox

SPEC = DecodeSpec(input_width=320, input_height=320, score_threshold=0.3, iou_threshold=0.5)


def yolov8_tensor(rows: list[tuple[float, float, float, float, list[float]]]) -> np.ndarray:
    """[1, 4 + nc, N] from (cx, cy, w, h, class scores) rows."""
    return np.array([[*r[:4], *r[4]] for r in rows], dtype=np.float32).T[None]


def test_yolov8_keeps_best_of_overlapping_boxes_per_class() -> None:
    out = yolov8_tensor(
        [
            (100, 100, 40, 80, [0.9, 0.0]),
            (102, 101, 40, 80, [0.8, 0.0]),  # duplicate of the first: suppressed
            (101, 100, 40, 80, [0.0, 0.7]),  # same place, other class: kept (class-aware)
            (200, 100, 40, 80, [0.2, 0.1]),  # below the score threshold
        ]
    )
    (dets,) = get_decoder("yolov8")([out], SPEC)
    assert dets.scores.tolist() == pytest.approx([0.9, 0.7])
    assert dets.classes.tolist() == [0, 1]
    np.testing.assert_allclose(dets.boxes[0], [80, 60, 120, 140])


def test_class_agnostic_nms_merges_classes() -> None:
    out = yolov8_tensor([(100, 100, 40, 80, [0.9, 0.0]), (101, 100, 40, 80, [0.0, 0.7])])
    spec = DecodeSpec(input_width=320, input_height=320, class_agnostic=True, score_threshold=0.3)
    (dets,) = get_decoder("yolov8")([out], spec)
    assert len(dets) == 1 and dets.classes.tolist() == [0]


def test_normalized_boxes_are_scaled_to_input_pixels() -> None:
    out = yolov8_tensor([(0.5, 0.25, 0.1, 0.2, [0.9])])
    spec = DecodeSpec(input_width=320, input_height=160, normalized_boxes=True)
    (dets,) = get_decoder("yolov8")([out], spec)
    np.testing.assert_allclose(dets.boxes[0], [144, 24, 176, 56], atol=1e-4)


def test_yolov5_multiplies_objectness_and_class_score() -> None:
    rows = np.array(
        [
            [50, 50, 20, 20, 0.9, 0.1, 0.8],  # 0.72 for class 1
            [150, 50, 20, 20, 0.4, 0.9, 0.1],  # 0.36 for class 0
            [250, 50, 20, 20, 0.9, 0.3, 0.3],  # 0.27: below 0.3
        ],
        dtype=np.float32,
    )[None]
    (dets,) = get_decoder("yolov5")([rows], SPEC)
    assert dets.classes.tolist() == [1, 0]
    assert dets.scores.tolist() == pytest.approx([0.72, 0.36])


def test_yolox_decodes_cell_offsets_and_log_sizes_per_stride() -> None:
    spec = DecodeSpec(input_width=64, input_height=64, score_threshold=0.3, num_classes=2)
    rows = np.zeros((64 + 16 + 4, 7), np.float32)  # cells of strides 8, 16, 32 on a 64x64 input
    rows[8 * 2 + 3] = [0.5, 0.5, np.log(2.0), np.log(3.0), 0.9, 0.2, 0.8]  # stride 8, cell x=3 y=2
    rows[64 + 4 * 1 + 2] = [0.0, 0.0, 0.0, 0.0, 0.8, 0.9, 0.1]  # stride 16, cell x=2 y=1
    rows[80] = [0.5, 0.5, 0.0, 0.0, 0.2, 1.0, 1.0]  # objectness too low
    (dets,) = get_decoder("yolox")([rows[None]], spec)
    assert dets.classes.tolist() == [1, 0]
    assert dets.boxes[0].tolist() == pytest.approx([28 - 8, 20 - 12, 28 + 8, 20 + 12])  # centre (3.5*8, 2.5*8)
    assert dets.boxes[1].tolist() == pytest.approx([32 - 8, 16 - 8, 32 + 8, 16 + 8])
    assert dets.scores.tolist() == pytest.approx([0.72, 0.72])
    with pytest.raises(ModelError, match=r"params\.strides"):
        get_decoder("yolox")([rows[None, :50]], spec)


def test_yolo_e2e_filters_by_score_without_nms() -> None:
    rows = np.zeros((1, 300, 6), np.float32)
    rows[0, 0] = [10, 10, 50, 50, 0.9, 2]
    rows[0, 1] = [11, 10, 51, 50, 0.8, 2]  # overlapping: an end-to-end model already chose both
    rows[0, 2] = [100, 100, 150, 150, 0.1, 1]
    (dets,) = get_decoder("yolo_e2e")([rows], SPEC)
    assert len(dets) == 2 and dets.classes.tolist() == [2, 2]
    np.testing.assert_allclose(dets.boxes[1], [11, 10, 51, 50])


def test_ssd_tflite_reads_yx_boxes_count_and_output_order() -> None:
    boxes = np.array([[[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.9, 0.9], [0.0, 0.0, 1.0, 1.0]]], np.float32)
    classes = np.array([[3, 1, 0]], np.float32)
    scores = np.array([[0.8, 0.6, 0.99]], np.float32)
    count = np.array([2], np.float32)  # the third row is padding past the count
    spec = DecodeSpec(input_width=300, input_height=200, ssd_outputs=("scores", "boxes", "count", "classes"))
    (dets,) = get_decoder("ssd_tflite")([scores, boxes, count, classes], spec)
    assert dets.classes.tolist() == [3, 1]
    np.testing.assert_allclose(dets.boxes[0], [60, 20, 120, 60], atol=1e-4)


def test_wrong_output_layout_is_a_clear_model_error() -> None:
    spec = DecodeSpec(input_width=320, input_height=320, num_classes=80)
    with pytest.raises(ModelError, match=r"yolov8.*labels"):
        get_decoder("yolov8")([np.zeros((1, 6, 2100), np.float32)], spec)
    with pytest.raises(ModelError, match=r"known: .*yolov8"):
        get_decoder("yolov9000")
    with pytest.raises(ModelError, match="yolo_e2e"):
        get_decoder("yolo_e2e")([np.zeros((1, 300, 7), np.float32)], spec)


def reference_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, thr: float) -> list[int]:
    """Plain greedy NMS: each box in score order is kept unless a kept box of its class overlaps it more than thr."""
    keep: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        rivals = [k for k in keep if classes[k] == classes[i]]
        if not rivals or (box_iou(boxes[[i]], boxes[rivals])[0] <= thr).all():
            keep.append(int(i))
    return keep


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_matches_plain_greedy_nms(seed: int) -> None:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 300, (400, 2))
    wh = rng.uniform(10, 60, (400, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = rng.uniform(0, 1, 400).astype(np.float32)
    classes = rng.integers(0, 3, 400)
    kept = nms(boxes, scores, classes, 0.45, max_detections=1000)
    assert kept.tolist() == reference_nms(boxes, scores, classes, 0.45)
    agnostic = nms(boxes, scores, classes, 0.45, class_agnostic=True, max_detections=1000)
    assert agnostic.tolist() == reference_nms(boxes, scores, np.zeros_like(classes), 0.45)
    ties = np.full(400, 0.5, np.float32)  # equal scores: the lower index wins, as in the reference
    assert nms(boxes, ties, classes, 0.45, max_detections=1000).tolist() == reference_nms(boxes, ties, classes, 0.45)


def test_nms_matches_opencv_on_a_dense_shelf() -> None:
    """OpenCV's NMSBoxesBatched (greedy, every candidate against every kept box) as a second reference."""
    cv2 = pytest.importorskip("cv2")
    from bench.peers import dense_table

    cols = dense_table(320)[0]
    best = cols[4:].max(axis=0)
    keep = np.flatnonzero(best >= 0.25)
    xy, wh = cols[0:2, keep].T, cols[2:4, keep].T
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1).astype(np.float32)
    scores, classes = best[keep], cols[4:, keep].argmax(axis=0)
    rects = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1).astype(np.float64)
    for thr in (0.3, 0.5, 0.7):
        expected = cv2.dnn.NMSBoxesBatched(rects, scores, classes.astype(np.int32), 0.0, thr)
        assert nms(boxes, scores, classes, thr, max_detections=1000).tolist() == np.ravel(expected).tolist()


def test_a_pile_of_large_boxes_and_a_few_boxes_give_the_same_indices() -> None:
    """The two shapes that go to OpenCV's pass (a pile of large boxes, fewer than FEW_BOXES) against plain NMS."""
    rng = np.random.default_rng(5)
    for count, side in ((300, 200.0), (FEW_BOXES - 1, 40.0)):
        xy = rng.uniform(0, 50, (count, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(side / 2, side, (count, 2))], 1).astype(np.float32)
        scores = rng.uniform(0.3, 1, count).astype(np.float32)
        classes = rng.integers(0, 2, count)
        for agnostic in (False, True):
            ids = np.zeros_like(classes) if agnostic else classes
            kept = nms(boxes, scores, classes, 0.6, class_agnostic=agnostic, max_detections=1000)
            assert kept.tolist() == reference_nms(boxes, scores, ids, 0.6)


def reference_nested_nms(boxes: np.ndarray, scores: np.ndarray, iou: float, nested: float) -> list[int]:
    """Greedy, one class: a box is dropped when a kept box overlaps it by IoU > iou or holds > nested of its area."""
    keep: list[int] = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in np.argsort(-scores, kind="stable"):
        lo, hi = np.maximum(boxes[keep, :2], boxes[i, :2]), np.minimum(boxes[keep, 2:], boxes[i, 2:])
        inside = np.prod(np.clip(hi - lo, 0, None), axis=1)
        if not keep or ((box_iou(boxes[[i]], boxes[keep])[0] <= iou) & (inside <= nested * area[i])).all():
            keep.append(int(i))
    return keep


@pytest.mark.parametrize("count", [FEW_BOXES - 5, 400])
def test_nested_boxes_are_suppressed_exactly(count: int) -> None:
    rng = np.random.default_rng(count)
    xy = rng.uniform(0, 300, (count, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 90, (count, 2))], 1).astype(np.float32)
    scores = rng.uniform(0, 1, count).astype(np.float32)
    kept = nms(boxes, scores, np.zeros(count, np.int64), 0.5, class_agnostic=True, max_detections=1000,
               nested_threshold=0.6)  # fmt: skip
    assert kept.tolist() == reference_nested_nms(boxes, scores, 0.5, 0.6)
    assert len(kept) < len(nms(boxes, scores, np.zeros(count, np.int64), 0.5, max_detections=1000))


def test_a_part_inside_a_better_box_goes_but_a_better_part_stays() -> None:
    """A label box (IoU 0.16 with its package) inside the package's box: dropped only when the package scores
    better; side-by-side facings that touch are both kept."""
    package, label, neighbour = [0, 0, 100, 200], [20, 40, 80, 120], [100, 0, 200, 200]
    boxes = np.array([package, label, neighbour], np.float32)
    classes = np.zeros(3, np.int64)
    better_package = np.array([0.9, 0.6, 0.8], np.float32)
    assert nms(boxes, better_package, classes, 0.5, nested_threshold=0.6).tolist() == [0, 2]
    assert nms(boxes, better_package, classes, 0.5).tolist() == [0, 2, 1]
    better_label = np.array([0.6, 0.9, 0.8], np.float32)
    assert nms(boxes, better_label, classes, 0.5, nested_threshold=0.6).tolist() == [1, 2, 0]
    shape: list[int | None] = [1, 3, 320, 320]
    spec = DecodeSpec.from_manifest(manifest("NCHW", shape, thresholds={"score": 0.3, "iou": 0.5, "nested": 0.6}))
    assert spec.nested_threshold == 0.6 and DecodeSpec.from_manifest(manifest("NCHW", shape)).nested_threshold is None
    for bad in ({"nested": 0.0}, {"iou": 1.5}, {"score": -0.1}):
        with pytest.raises(ModelError, match=f"thresholds.{next(iter(bad))} is"):
            DecodeSpec.from_manifest(manifest("NCHW", shape, thresholds=bad))


def test_a_long_suppression_chain_is_still_exact() -> None:
    """Boxes in a row, each overlapping the next: every round settles one box only, past MAX_ROUNDS."""
    n = 3 * MAX_ROUNDS
    x = np.arange(n, dtype=np.float32) * 2
    boxes = np.stack([x, np.zeros(n), x + 10, np.full(n, 10)], 1).astype(np.float32)
    scores = np.linspace(1.0, 0.5, n).astype(np.float32)
    classes = np.zeros(n, np.int64)
    assert nms(boxes, scores, classes, 0.5, max_detections=1000).tolist() == reference_nms(boxes, scores, classes, 0.5)
    chain = np.arange(n - 1)
    assert greedy_keep(n, chain, chain + 1).tolist() == [i % 2 == 0 for i in range(n)]


def test_dense_shelf_keeps_every_product() -> None:
    """150 facings, each with 6 jittered candidates: all 150 survive (no truncation inside NMS)."""
    rng = np.random.default_rng(0)
    truth = np.array([[c * 21 + 2, r * 32 + 2, c * 21 + 22, r * 32 + 32] for r in range(10) for c in range(15)])
    boxes = (np.repeat(truth, 6, 0) + rng.normal(0, 1.0, (900, 4))).astype(np.float32)
    scores = rng.uniform(0.3, 1, 900).astype(np.float32)
    dets = select(boxes, scores, np.zeros(900, np.int64), SPEC)
    assert len(dets) == 150
    assert (box_iou(dets.boxes, truth.astype(np.float32)).max(axis=1) > 0.7).all()


def test_top_k_keeps_the_best_candidates() -> None:
    boxes = np.array([[0, 0, 10, 10], [100, 0, 110, 10], [200, 0, 210, 10]], np.float32)
    scores = np.array([0.5, 0.9, 0.7], np.float32)
    spec = DecodeSpec(input_width=320, input_height=320, pre_nms_top_k=2)
    dets = select(boxes, scores, np.zeros(3, np.int64), spec)
    assert dets.scores.tolist() == pytest.approx([0.9, 0.7])


def test_empty_output_gives_no_detections() -> None:
    (dets,) = get_decoder("yolov8")([np.zeros((1, 5, 2100), np.float32)], SPEC)
    assert len(dets) == 0 and dets.boxes.shape == (0, 4)


def manifest(layout: str, shape: list[int | None], **extra: object) -> Manifest:
    return Manifest(
        name="m",
        version="1",
        task="shelf",
        files={"onnx-int8": ModelFile(path="m.onnx", sha256="0" * 64, format="onnx", precision="int8")},
        default_variant="onnx-int8",
        inputs=[InputSpec(name="images", shape=shape, layout=layout)],  # type: ignore[arg-type]
        outputs=[TensorSpec(name="out", shape=[1, 6, 2100])],
        decoder="yolov8",
        **extra,  # type: ignore[arg-type]
    )


def test_decode_spec_comes_from_the_manifest() -> None:
    m = manifest(
        "NCHW",
        [1, 3, 256, 320],
        labels=["a", "b"],
        thresholds={"score": 0.4, "iou": 0.6},
        params={"normalized_boxes": True, "pre_nms_top_k": 500, "ssd_outputs": ["boxes", "scores", "classes", "count"]},
    )
    spec = DecodeSpec.from_manifest(m, iou_threshold=0.3)
    assert (spec.input_width, spec.input_height, spec.num_classes) == (320, 256, 2)
    assert (spec.score_threshold, spec.iou_threshold, spec.pre_nms_top_k) == (0.4, 0.3, 500)
    assert spec.normalized_boxes and spec.ssd_outputs[1] == "scores"
    nhwc = DecodeSpec.from_manifest(manifest("NHWC", [1, 320, 240, 3]))
    assert (nhwc.input_width, nhwc.input_height) == (240, 320)
    with pytest.raises(ModelError, match="fixed input"):
        DecodeSpec.from_manifest(manifest("NCHW", [1, 3, None, None]))


def test_letterboxed_boxes_map_back_to_the_frame() -> None:
    # A 640x480 frame letterboxed into 320x320: scale 0.5, 40 px bars above and below.
    box = Letterbox(0.5, 0.5, 0.0, 40.0)
    np.testing.assert_allclose(box.to_frame(np.array([[10, 50, 30, 90]], np.float32)), [[20, 20, 60, 100]])
