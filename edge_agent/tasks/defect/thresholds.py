"""Thresholds that say what they will do: chosen from out-of-fold scores, judged on images that did not set them.

Every good image is scored against a memory bank built without it (k-fold), so its score is what a new
good part of the same kind would get. The threshold for a stated false-reject rate is an order statistic
of those scores; the rate it will give is estimated one level further out (for each fold, a threshold set
from the other folds' scores judges that fold) and reported with an exact binomial interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Rule = Callable[[np.ndarray], float]


def fold_ids(n: int, folds: int, rng: np.random.Generator) -> np.ndarray:
    """A fold number per image, folds as equal as possible, in random order."""
    return np.asarray(rng.permutation(np.arange(n) % folds))


def good_only_threshold(good: np.ndarray, max_false_reject: float) -> float:
    """The k-th highest good score, k = floor(rate * (n + 1)): a new good part of the same kind then scores at
    or above it with probability k / (n + 1) <= rate (order statistics, no assumption on the distribution).

    With too few images for k >= 1 the highest score plus a tenth of its distance from the median is used,
    and the expected rate is larger than asked: the cross-validated figure shows by how much.
    """
    ordered = np.sort(np.asarray(good, np.float64))[::-1]
    k = math.floor(max_false_reject * (len(ordered) + 1))
    if k >= 1:
        return float(ordered[k - 1])
    return float(ordered[0] + 0.1 * max(ordered[0] - float(np.median(ordered)), 1e-6))


def good_only_method(n: int, rate: float) -> str:
    k = math.floor(rate * (n + 1))
    if k >= 1:
        return (f"score number {k} from the top of {n} out-of-fold good scores, so a new good part reaches it with"
                f" probability {k}/{n + 1} <= {rate:.1%} asked")  # fmt: skip
    return (f"just above the highest of {n} out-of-fold good scores; {math.ceil(1 / rate) - 1} good images are"
            f" needed to set a {rate:.1%} false-reject rate")  # fmt: skip


def balanced_threshold(good: np.ndarray, defects: np.ndarray) -> float:
    """The threshold that minimises false-reject rate + miss rate (Youden's J), midway in the gap it falls in."""
    good, defects = np.asarray(good, np.float64), np.asarray(defects, np.float64)
    values = np.unique(np.concatenate([good, defects]))
    cuts = np.concatenate([[values[0]], (values[:-1] + values[1:]) / 2.0, [values[-1] + 1e-9]])
    frr = (good[None, :] >= cuts[:, None]).mean(axis=1)
    miss = (defects[None, :] < cuts[:, None]).mean(axis=1)
    return float(cuts[int(np.argmin(frr + miss))])


def cross_validated_rejects(scores: np.ndarray, folds: np.ndarray, rule: Rule) -> int:
    """Good images rejected when each fold is judged at the threshold `rule` sets from the other folds."""
    rejects = 0
    for f in np.unique(folds):
        held = folds == f
        rejects += int((scores[held] >= rule(scores[~held])).sum())
    return rejects


def _binom_cdf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p)
            + (n - i) * math.log1p(-p) for i in range(k + 1)]  # fmt: skip
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def _solve(f: Callable[[float], float], target: float) -> float:
    """p in [0, 1] with f(p) = target for a decreasing f (bisection)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) > target else (lo, mid)
    return (lo + hi) / 2


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial interval for k events in n trials."""
    alpha = 1.0 - confidence
    # lower: P(X >= k) = alpha / 2, i.e. cdf(k - 1) = 1 - alpha / 2; upper: cdf(k) = alpha / 2 (cdf falls with p)
    lower = 0.0 if k == 0 else _solve(lambda p: _binom_cdf(k - 1, n, p), 1.0 - alpha / 2)
    upper = 1.0 if k == n else _solve(lambda p: _binom_cdf(k, n, p), alpha / 2)
    return lower, upper


@dataclass(frozen=True)
class Rate:
    """k events out of n with its 95% interval."""

    events: int
    trials: int

    @property
    def value(self) -> float:
        return self.events / self.trials if self.trials else float("nan")

    def interval(self) -> tuple[float, float]:
        return clopper_pearson(self.events, self.trials)

    def as_dict(self) -> dict[str, float | int]:
        lo, hi = self.interval()
        return {"events": self.events, "of": self.trials, "rate": round(self.value, 4),
                "ci95_low": round(lo, 4), "ci95_high": round(hi, 4)}  # fmt: skip

    def text(self) -> str:
        lo, hi = self.interval()
        return f"{self.value:.1%} ({self.events} of {self.trials}; 95% interval {lo:.1%} to {hi:.1%})"


@dataclass(frozen=True)
class ThresholdChoice:
    """A threshold and what it is expected to do, measured on images that did not choose it."""

    threshold: float
    method: str
    false_rejects: Rate  # cross-validated on good images
    misses: Rate | None  # on the known defects, None without them


def choose(
    good_oof: np.ndarray, folds: np.ndarray, defects: np.ndarray | None, max_false_reject: float
) -> ThresholdChoice:
    """The threshold from out-of-fold good scores (and known-defect scores when given)."""
    n = len(good_oof)
    if defects is None or len(defects) == 0:

        def rule(g: np.ndarray) -> float:
            return good_only_threshold(g, max_false_reject)

        method = good_only_method(n, max_false_reject)
        misses = None
    else:

        def rule(g: np.ndarray) -> float:
            return balanced_threshold(g, defects)

        method = f"balances misses and false rejects over {n} out-of-fold good and {len(defects)} known-defect scores"
    threshold = rule(good_oof)
    if defects is not None and len(defects):
        misses = Rate(int((np.asarray(defects) < threshold).sum()), len(defects))
    return ThresholdChoice(threshold, method, Rate(cross_validated_rejects(good_oof, folds, rule), n), misses)


def describe(choice: ThresholdChoice, names: Sequence[str] = ()) -> list[str]:
    """Card lines: the expected false-reject rate with its interval, and the miss rate or why it is unknown."""
    lines = [f"- Expected false-reject rate: {choice.false_rejects.text()}: each good image judged against a memory"
             " bank built without it, at a threshold set without it (nested cross-validation)."]  # fmt: skip
    if choice.misses is None:
        lines.append("- Miss rate: **unknown**. No defective parts were given; fit again with `--defects DIR` (a"
                     " handful of known defects) to measure it.")  # fmt: skip
    else:
        lines.append(f"- Miss rate on the known defects: {choice.misses.text()}. These defects also chose the"
                     " threshold, so expect more misses on defects unlike them.")  # fmt: skip
    return lines
