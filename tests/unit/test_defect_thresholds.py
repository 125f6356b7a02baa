"""Defect thresholds: the stated false-reject rate holds on good parts that did not set it, and the
reported rate is measured on images that never chose the threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_agent.tasks.defect.thresholds import (
    Rate,
    balanced_threshold,
    choose,
    clopper_pearson,
    cross_validated_rejects,
    describe,
    fold_ids,
    good_only_threshold,
)


@pytest.mark.parametrize("rate", [0.01, 0.05])
def test_stated_rate_is_honoured_on_held_out_good_parts(rate: float) -> None:
    """Fit on 300 good scores, judge 20,000 fresh ones, 200 times: the mean false-reject rate is the one asked."""
    rng = np.random.default_rng(0)
    seen = []
    for _ in range(200):
        threshold = good_only_threshold(rng.lognormal(0, 0.4, 300), rate)
        seen.append(float((rng.lognormal(0, 0.4, 20_000) >= threshold).mean()))
    assert np.mean(seen) <= rate * 1.1, np.mean(seen)
    assert np.mean(seen) >= rate * 0.6, "not so cautious that it asks for far fewer rejects than allowed"


def test_too_few_images_still_give_a_threshold_above_every_good_score() -> None:
    good = np.array([1.0, 2.0, 3.0, 10.0])
    assert good_only_threshold(good, 0.01) > 10.0


def test_cross_validation_never_judges_a_fold_with_a_threshold_it_set() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=50)
    folds = fold_ids(50, 5, rng)
    seen: list[set[float]] = []

    def rule(good: np.ndarray) -> float:
        seen.append(set(good.tolist()))
        return float(np.quantile(good, 0.9))

    rejects = cross_validated_rejects(scores, folds, rule)
    assert len(seen) == 5
    for f, used in zip(np.unique(folds), seen):
        assert used.isdisjoint(scores[folds == f].tolist())
    assert 0 < rejects < 20


def test_clopper_pearson_matches_the_exact_interval() -> None:
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 10), abs=1e-6)
    lo, hi = clopper_pearson(5, 10)
    assert lo == pytest.approx(0.187086, abs=1e-5) and hi == pytest.approx(0.812914, abs=1e-5)
    lo, hi = clopper_pearson(3, 300)
    assert lo < 0.01 < hi and hi < 0.03


def test_balanced_threshold_separates_separable_scores() -> None:
    t = balanced_threshold(np.array([1.0, 1.2, 1.4]), np.array([2.0, 2.5]))
    assert 1.4 < t <= 2.0


def test_without_defects_the_miss_rate_is_unknown_and_said_so() -> None:
    rng = np.random.default_rng(2)
    good = rng.normal(size=100)
    choice = choose(good, fold_ids(100, 5, rng), None, 0.01)
    assert choice.misses is None and choice.false_rejects.trials == 100
    text = "\n".join(describe(choice))
    assert "unknown" in text and "--defects" in text


def test_with_defects_the_miss_rate_is_measured() -> None:
    rng = np.random.default_rng(3)
    good, bad = rng.normal(size=60), rng.normal(3.0, 1.0, size=12)
    choice = choose(good, fold_ids(60, 5, rng), bad, 0.01)
    assert choice.misses is not None and choice.misses.trials == 12
    assert choice.misses.value < 0.5 and choice.false_rejects.value < 0.3


def test_rate_text_carries_its_interval() -> None:
    text = Rate(2, 40).text()
    assert "2 of 40" in text and "95% interval" in text and math.isclose(Rate(2, 40).value, 0.05)
