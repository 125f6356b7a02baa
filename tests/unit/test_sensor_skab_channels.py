"""Which channels carry a fault: the rank measure the one-channel SKAB bench picks its pairs by."""

from __future__ import annotations

import numpy as np
import pytest

from bench.sensor_skab_channels import fault_effect, folded_auroc


def _pairwise(positive: np.ndarray, negative: np.ndarray) -> float:
    """AUROC by counting every (positive, negative) pair, ties half: the definition the ranks must match."""
    diff = positive[:, None] - negative[None, :]
    auc = float(((diff > 0) + 0.5 * (diff == 0)).mean())
    return max(auc, 1.0 - auc)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_folded_auroc_equals_the_pairwise_count_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    positive = rng.integers(0, 6, 40).astype(float)  # few distinct values: many ties
    negative = rng.integers(1, 8, 55).astype(float)
    assert folded_auroc(positive, negative) == pytest.approx(_pairwise(positive, negative))


def test_a_level_shift_and_a_variance_change_carry_a_fault_and_an_unmoved_channel_does_not() -> None:
    rng = np.random.default_rng(3)
    labels = np.zeros(2000, dtype=np.int8)
    labels[1200:1500] = 1
    quiet = rng.normal(0, 1, 2000)
    shifted = quiet.copy()
    shifted[1200:1500] += 4.0
    noisy = quiet.copy()
    noisy[1200:1500] *= 10.0  # same centre, wider: only the distance from the normal median shows it
    assert fault_effect(shifted, labels) > 0.97
    assert fault_effect(noisy, labels) > 0.9
    assert folded_auroc(noisy[1200:1500], noisy[labels == 0]) < 0.6
    assert fault_effect(quiet, labels) < 0.6


def test_a_file_without_both_kinds_of_sample_carries_nothing() -> None:
    values = np.arange(10.0)
    assert fault_effect(values, np.zeros(10, dtype=np.int8)) == 0.5
    assert fault_effect(values, np.ones(10, dtype=np.int8)) == 0.5
