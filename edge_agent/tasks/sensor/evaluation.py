"""Detection metrics on labelled runs: point-wise F1/precision/recall, false alarms per day, detection delay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class Run:
    """One labelled recording: 0/1 labels, 0/1 predictions and epoch-second timestamps per sample."""

    labels: np.ndarray
    predicted: np.ndarray
    timestamps: np.ndarray


@dataclass(frozen=True)
class Report:
    """Point-wise scores summed over all runs (SKAB's protocol), plus event-level figures.

    f1 = TP / (TP + (FP + FN) / 2); far/mar in percent of normal/abnormal points. A false alarm is a
    predicted anomaly (a run of positive points) that overlaps no labelled anomaly; false_alarms_per_day
    divides them by the time spent in normal operation. The delay of a labelled anomaly is the time from
    its first labelled point to its first predicted point; missed anomalies have none.
    """

    f1: float
    precision: float
    recall: float
    far_pct: float
    mar_pct: float
    tp: int
    fp: int
    fn: int
    tn: int
    anomalies: int
    detected: int
    false_alarms: int
    false_alarms_per_day: float
    mean_delay_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def segments(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the runs of True in a boolean/0-1 array."""
    padded = np.concatenate(([0], np.asarray(mask, dtype=np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    return [(int(edges[i]), int(edges[i + 1])) for i in range(0, len(edges), 2)]


def detection_delays(labels: np.ndarray, predicted: np.ndarray, timestamps: np.ndarray) -> list[float | None]:
    """Per labelled anomaly: seconds from its start to the first predicted point inside it, or None if missed."""
    delays: list[float | None] = []
    for start, end in segments(labels):
        hits = np.flatnonzero(predicted[start:end])
        delays.append(float(timestamps[start + hits[0]] - timestamps[start]) if len(hits) else None)
    return delays


def false_alarm_count(labels: np.ndarray, predicted: np.ndarray) -> int:
    """Predicted anomalies that overlap no labelled anomaly point."""
    return sum(1 for start, end in segments(predicted) if not np.any(labels[start:end]))


def _normal_seconds(run: Run) -> float:
    if len(run.timestamps) < 2:
        return 0.0
    period = float(np.median(np.diff(run.timestamps)))
    return period * float(np.sum(run.labels == 0))


def evaluate(runs: Sequence[Run]) -> Report:
    """Sum confusion counts over runs and compute the report."""
    tp = fp = fn = tn = 0
    delays: list[float | None] = []
    alarms = 0
    normal_s = 0.0
    for run in runs:
        truth = np.asarray(run.labels).astype(bool)
        pred = np.asarray(run.predicted).astype(bool)
        if truth.shape != pred.shape:
            raise ValueError(f"labels {truth.shape} and predictions {pred.shape} differ in length")
        tp += int(np.sum(truth & pred))
        fp += int(np.sum(~truth & pred))
        fn += int(np.sum(truth & ~pred))
        tn += int(np.sum(~truth & ~pred))
        delays += detection_delays(truth, pred, run.timestamps)
        alarms += false_alarm_count(truth, pred)
        normal_s += _normal_seconds(run)
    found = [d for d in delays if d is not None]
    return Report(
        f1=tp / (tp + (fp + fn) / 2) if tp else 0.0,
        precision=tp / (tp + fp) if tp + fp else 0.0,
        recall=tp / (tp + fn) if tp + fn else 0.0,
        far_pct=100.0 * fp / (fp + tn) if fp + tn else 0.0,
        mar_pct=100.0 * fn / (fn + tp) if fn + tp else 0.0,
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        anomalies=len(delays),
        detected=len(found),
        false_alarms=alarms,
        false_alarms_per_day=alarms * SECONDS_PER_DAY / normal_s if normal_s > 0 else 0.0,
        mean_delay_s=float(np.mean(found)) if found else None,
    )
