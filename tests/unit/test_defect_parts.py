"""Calibration maths, shifts, trigger gate, snapshot bounds, synthetic parts and anomalies of the defect job."""

from __future__ import annotations

from datetime import datetime, timezone

import cv2
import numpy as np
import pytest

from edge_agent.tasks.defect import calibrate
from edge_agent.tasks.defect.anomalies import add_anomalies
from edge_agent.tasks.defect.overlay import bounded_jpeg, defect_box, overlay
from edge_agent.tasks.defect.shifts import ShiftCounter, ShiftSchedule
from edge_agent.tasks.defect.synth import DEFECT_KINDS, make_part
from edge_agent.tasks.defect.trigger import TriggerGate

UTC = timezone.utc


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# ---------------------------------------------------------------- calibration


def test_auroc_perfect_inverted_and_ties() -> None:
    labels = np.array([0, 0, 1, 1])
    assert calibrate.auroc(np.array([0.1, 0.2, 0.8, 0.9]), labels) == 1.0
    assert calibrate.auroc(np.array([0.9, 0.8, 0.2, 0.1]), labels) == 0.0
    assert calibrate.auroc(np.array([0.5, 0.5, 0.5, 0.5]), labels) == 0.5


def test_miss_rate_at_one_percent_false_rejects() -> None:
    good = np.linspace(0, 1, 100)  # one good item may be rejected: the threshold sits above the second highest
    scores = np.r_[good, [0.995, 0.5, 2.0]]
    labels = np.r_[np.zeros(100), np.ones(3)]
    assert calibrate.miss_rate_at_frr(scores, labels, 0.01) == pytest.approx(1 / 3)


def test_threshold_from_good_only_sits_above_held_out_goods() -> None:
    good = np.random.default_rng(0).normal(0.2, 0.05, 50)
    t, how = calibrate.choose_threshold(good, None, 0.01)
    assert t > good.max() and "held-out good" in how


def test_threshold_with_known_defects_separates_them() -> None:
    t, how = calibrate.choose_threshold(np.array([0.1, 0.2, 0.3]), np.array([0.7, 0.8]), 0.01)
    assert 0.3 < t < 0.7 and "F1" in how
    assert calibrate.verdicts(np.array([0.1, 0.2, 0.3, 0.7, 0.8]), np.array([0, 0, 0, 1, 1]), t).f1 == 1.0


# ---------------------------------------------------------------- shifts


def test_shift_schedule_including_the_night_shift_after_midnight() -> None:
    schedule = ShiftSchedule(["06:00", "14:00", "22:00"], UTC)
    assert schedule.shift_at(ts("2026-03-02T06:00:00")).name == "06:00"
    assert schedule.shift_at(ts("2026-03-02T21:59:59")).name == "14:00"
    night = schedule.shift_at(ts("2026-03-03T02:30:00"))
    assert night.name == "22:00" and night.day.isoformat() == "2026-03-02"


def test_shift_counter_restarts_with_each_new_shift() -> None:
    counter = ShiftCounter(ShiftSchedule(["06:00", "18:00"], UTC))
    counter.record(ts("2026-03-02T07:00:00"), passed=True)
    tally = counter.record(ts("2026-03-02T08:00:00"), passed=False)
    assert (tally.items, tally.failed, tally.defect_rate) == (2, 1, 0.5)
    again = counter.record(ts("2026-03-03T07:00:00"), passed=True)  # next day's 06:00 shift
    assert (again.items, again.defect_rate) == (1, 0.0)
    assert [s["shift"] for s in counter.summary()] == ["06:00"]


# ---------------------------------------------------------------- trigger gate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_gate_passes_one_frame_per_trigger_in_order() -> None:
    clock = Clock()
    gate = TriggerGate(timeout_s=5, clock=clock)
    assert gate.take(1000.0) is None
    gate.fire("a")
    gate.fire("b")
    assert gate.take(999.0) is None  # a frame captured before the trigger does not show the part
    assert gate.take(1000.1) == "a" and gate.take(1000.2) == "b" and gate.take(1000.3) is None


def test_gate_delay_and_expiry() -> None:
    clock = Clock()
    gate = TriggerGate(timeout_s=2, delay_s=0.5, clock=clock)
    gate.fire()
    assert gate.take(1000.2) is None  # part still settling
    clock.now = 1003.0
    assert gate.take(1003.0) is None and gate.missed == 1
    gate.hook()(17, edge="rising")  # a GPIO callback with its own arguments
    assert gate.take(1003.6) == "trigger-2"


# ---------------------------------------------------------------- overlay and snapshots


def test_snapshot_of_a_big_noisy_frame_stays_under_the_bound() -> None:
    image = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    amap = np.zeros((30, 40), np.float32)
    amap[10:14, 20:25] = 0.9
    drawn = overlay(image, amap, 0.5, defect_box(amap, 0.5, 1920, 1080), "FAIL 0.9 / 0.5")
    data = bounded_jpeg(drawn, 100_000, 640)
    assert len(data) <= 100_000
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert max(decoded.shape[:2]) <= 640


def test_defect_box_surrounds_the_peak_region_only() -> None:
    amap = np.zeros((10, 10), np.float32)
    amap[2:4, 6:9] = 1.0
    amap[8, 0] = 0.7  # a second, weaker region
    assert defect_box(amap, 0.5, 100, 100) == (60, 20, 30, 20)


# ---------------------------------------------------------------- synthetic parts and anomalies


@pytest.mark.parametrize("kind", DEFECT_KINDS)
def test_synthetic_defects_change_the_part_where_the_mask_says(kind: str) -> None:
    rng = np.random.default_rng(5)
    good, good_mask = make_part(np.random.default_rng(5), 128, None)
    bad, mask = make_part(rng, 128, kind)
    assert not good_mask.any() and mask.any() and mask.mean() < 0.2
    diff = np.abs(bad.astype(int) - good.astype(int)).max(axis=2)
    assert diff[mask].mean() > 3 * max(1.0, diff[~mask].mean())


def test_generator_is_reproducible() -> None:
    a, _ = make_part(np.random.default_rng(3), 96, "scratch")
    b, _ = make_part(np.random.default_rng(3), 96, "scratch")
    assert np.array_equal(a, b)


def test_training_anomalies_label_only_visible_changes() -> None:
    rng = np.random.default_rng(0)
    image = np.full((64, 64, 3), 128, np.uint8)
    for _ in range(20):
        out, mask = add_anomalies(image, image, rng)
        changed = np.abs(out.astype(int) - image.astype(int)).max(axis=2)
        assert np.all(changed[mask > 0] > 10) and np.all(changed[mask == 0] <= 10)


def test_threshold_with_weak_known_defects_keeps_false_rejects_bounded() -> None:
    rng = np.random.default_rng(1)
    good, defects = rng.normal(0.3, 0.1, 60), rng.normal(0.32, 0.1, 40)  # hardly separable
    t, how = calibrate.choose_threshold(good, defects, 0.01, max_frr=0.05)
    assert np.mean(good >= t) <= 0.05 and "at most 5%" in how
