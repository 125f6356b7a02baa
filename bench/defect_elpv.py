"""ELPV (mono solar cells) accuracy of `edge-agent fit defect` with its defaults: fit on good cells only,
judge held-out good cells (0.0) against defective ones (1.0); uncertain cells (0.33, 0.67) reported apart.

    OPENBLAS_NUM_THREADS=1 python -m bench.defect_elpv --data ../shared/data/elpv-mono --fit

ELPV (CC BY-NC-SA 4.0) is read in place, never copied; the model goes to artifacts/ and is never shipped.
The good cells are split once with a fixed seed: --train of them to fit (300 by default), the rest to judge.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads: the nearest-neighbour product, 1 thread

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from bench.defect_common import REPO, fit_defaults, judge_all, markdown, save
from edge_agent.errors import EdgeAgentError
from edge_agent.runtime.manifest import load_manifest

NOTE = "Fitted on ELPV (CC BY-NC-SA 4.0) good mono cells with the fit defaults: for benchmarking only, never shipped."


def read_labels(data: Path) -> dict[float, list[Path]]:
    groups: dict[float, list[Path]] = {}
    for line in (data / "labels.csv").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            groups.setdefault(round(float(parts[1]), 2), []).append(data / parts[0])
    if not groups:
        raise SystemExit(f"error: no labels in {data / 'labels.csv'}; is --data the elpv-mono folder?")
    return groups


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="elpv-mono folder (images/, labels.csv)")
    p.add_argument("--model", type=Path, default=REPO / "artifacts" / "defect-elpv", help="fitted model folder")
    p.add_argument("--fit", action="store_true", help="fit the model first (fit defaults, good cells only)")
    p.add_argument("--train", type=int, default=300, help="good cells used to fit")
    p.add_argument("--json", type=Path, default=REPO / "artifacts" / "defect_elpv.json", help="results file")
    args = p.parse_args(argv)
    groups = read_labels(args.data)
    good = [groups[0.0][i] for i in np.random.default_rng(0).permutation(len(groups[0.0]))]
    fit = fit_defaults(good[: args.train], args.model, NOTE) if args.fit else None
    test = good[args.train :] + groups[1.0]
    labels = np.r_[np.zeros(len(good) - args.train, bool), np.ones(len(groups[1.0]), bool)]
    try:
        table = judge_all(args.model, [cv2.imread(str(f), cv2.IMREAD_ANYCOLOR) for f in test], labels,
                          [None] * len(test))  # fmt: skip
        uncertain = {}
        for level in (0.33, 0.67):
            cells = groups.get(level, [])
            from edge_agent.tasks.defect.evaluate import run_variant

            result = run_variant(args.model, "onnx-int8", [cv2.imread(str(f), cv2.IMREAD_ANYCOLOR) for f in cells])
            flagged = int((np.array(result.scores) >= float(result.threshold or 0)).sum())
            uncertain[str(level)] = {"cells": len(cells), "flagged_by_int8_onnx": flagged}
        manifest = load_manifest(args.model)
    except EdgeAgentError as exc:
        print(f"error: {exc} (fit one with --fit)", file=sys.stderr)
        return 2
    title = f"ELPV mono: {int((~labels).sum())} held-out good, {int(labels.sum())} defective cells ({args.model.name})"
    text = (
        markdown(table, title)
        + "\n\nUncertain cells flagged (int8 ONNX): "
        + ", ".join(f"{k}: {v['flagged_by_int8_onnx']} of {v['cells']}" for k, v in uncertain.items())
    )
    print(text)
    command = " ".join(["python -m bench.defect_elpv", *(argv if argv is not None else sys.argv[1:])])
    save(args.json, {"model": str(args.model), "fit": fit, "fit_metrics": manifest.metrics, "variants": table,
                     "uncertain": uncertain, "markdown": text, "command": command})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
