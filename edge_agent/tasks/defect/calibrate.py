"""Threshold calibration and the accuracy figures of a defect model (pure numpy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half); labels 1 = defect."""
    scores, labels = np.asarray(scores, np.float64).ravel(), np.asarray(labels).ravel().astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


@dataclass(frozen=True)
class Verdicts:
    """Counts at one threshold (an item fails when score >= threshold)."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def f1(self) -> float:
        return 2 * self.tp / max(1, 2 * self.tp + self.fp + self.fn)

    @property
    def false_reject_rate(self) -> float:
        return self.fp / max(1, self.fp + self.tn)

    @property
    def miss_rate(self) -> float:
        return self.fn / max(1, self.fn + self.tp)


def verdicts(scores: np.ndarray, labels: np.ndarray, threshold: float) -> Verdicts:
    fail, bad = np.asarray(scores) >= threshold, np.asarray(labels).astype(bool)
    return Verdicts(
        int((fail & bad).sum()), int((fail & ~bad).sum()), int((~fail & bad).sum()), int((~fail & ~bad).sum())
    )


def threshold_at_frr(good_scores: np.ndarray, frr: float) -> float:
    """The lowest threshold that rejects at most `frr` of these good items (ties stay on the good side)."""
    ordered = np.sort(np.asarray(good_scores, np.float64))[::-1]
    allowed = int(np.floor(frr * len(ordered)))
    return float(np.nextafter(ordered[min(allowed, len(ordered) - 1)], np.inf))


def miss_rate_at_frr(scores: np.ndarray, labels: np.ndarray, frr: float = 0.01) -> float:
    bad = np.asarray(labels).astype(bool)
    t = threshold_at_frr(np.asarray(scores)[~bad], frr)
    return verdicts(scores, labels, t).miss_rate


def choose_threshold(
    good: np.ndarray, defects: np.ndarray | None, frr: float = 0.01, max_frr: float = 0.05
) -> tuple[float, str]:
    """The decision threshold and how it was chosen.

    Good parts only: the (1 - frr) quantile of held-out good scores plus a margin of 10% of their
    spread, because a few dozen held-out images underestimate the tail. With known defects: the
    threshold with the best F1 on good + defect scores among those rejecting at most `max_frr` of the
    good ones (an F1 optimum on weakly separated scores would otherwise reject most good parts),
    placed midway in the gap it falls in.
    """
    good = np.asarray(good, np.float64)
    q = threshold_at_frr(good, frr)
    good_only = q + 0.1 * max(q - float(np.median(good)), 1e-6)
    if defects is None or len(defects) == 0:
        return good_only, f"{(1 - frr) * 100:g}% quantile of {len(good)} held-out good scores + 10% margin"
    scores = np.concatenate([good, np.asarray(defects, np.float64)])
    labels = np.concatenate([np.zeros(len(good)), np.ones(len(defects))])
    candidates = np.unique(scores)
    mids = np.concatenate([(candidates[:-1] + candidates[1:]) / 2.0, [candidates[-1] + 1e-6]])
    allowed = [t for t in mids if verdicts(scores, labels, t).false_reject_rate <= max_frr]
    best = float(max(allowed, key=lambda t: verdicts(scores, labels, t).f1))
    return best, (
        f"best F1 on {len(good)} held-out good and {len(defects)} known-defect scores"
        f" with at most {max_frr:.0%} good parts rejected"
    )


def pixel_auroc(maps: list[np.ndarray], masks: list[np.ndarray], max_pixels: int = 2_000_000, seed: int = 0) -> float:
    """Pixel-level AUROC of anomaly maps against ground-truth masks of the same shape (subsampled if huge)."""
    scores = np.concatenate([m.ravel() for m in maps])
    labels = np.concatenate([m.ravel() > 0.5 for m in masks])
    if len(scores) > max_pixels:
        pick = np.random.default_rng(seed).choice(len(scores), max_pixels, replace=False)
        scores, labels = scores[pick], labels[pick]
    return auroc(scores, labels)
