"""Evaluate a defect model folder on a synthetic evaluation set and write the figures into its card.

    python models/build/defect/evaluate_synthetic.py --model models/defect-synthetic --data artifacts/defect-build/eval

Adds `synthetic_eval` (per variant) to the manifest's metrics and a section to MODEL_CARD.md; quotes the
KolektorSDD table from bench.defect_kolektor's JSON when it exists (that model is not shipped).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from edge_agent.runtime.manifest import load_manifest, write_manifest  # noqa: E402
from edge_agent.tasks.defect.card import CARD_NAME  # noqa: E402
from edge_agent.tasks.defect.evaluate import evaluate, markdown  # noqa: E402

KOLEKTOR_CMD = "python -m bench.defect_kolektor --data PATH/TO/kolektorsdd --fit --fit-python PYTHON_WITH_TRAIN_EXTRA"
MARK = "\n## Synthetic evaluation set"


def load_set(data: Path, width: int, height: int) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray | None]]:
    frames, labels, masks = [], [], []
    for path in sorted((data / "good").glob("*.jpg")):
        frames.append(cv2.imread(str(path), cv2.IMREAD_COLOR))
        labels.append(False)
        masks.append(None)
    for path in sorted((data / "defects").glob("*.jpg")):
        frames.append(cv2.imread(str(path), cv2.IMREAD_COLOR))
        labels.append(True)
        mask = cv2.imread(str(data / "masks" / f"{path.stem}.png"), cv2.IMREAD_GRAYSCALE)
        masks.append((cv2.resize(mask, (width, height), interpolation=cv2.INTER_AREA) > 64).astype(np.uint8))
    return frames, np.array(labels), masks


def per_kind(model: Path, data: Path, frames: list[np.ndarray], labels: np.ndarray) -> str:
    """Image AUROC of the int8 ONNX per defect kind (each kind against all good parts)."""
    from edge_agent.tasks.defect import calibrate
    from edge_agent.tasks.defect.evaluate import run_variant

    names = [p.stem.split("_")[0] for p in sorted((data / "defects").glob("*.jpg"))]
    scores = np.array(run_variant(model, "onnx-int8", frames).scores)
    good, bad = scores[~labels], scores[labels]
    rows = []
    for kind in sorted(set(names)):
        picked = bad[[n == kind for n in names]]
        auc = calibrate.auroc(np.r_[good, picked], np.r_[np.zeros(len(good)), np.ones(len(picked))])
        rows.append(f"| {kind} | {len(picked)} | {auc:.4f} |")
    return "\n".join(["| defect kind | parts | image AUROC (int8 ONNX) |", "|---|---|---|", *rows])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="folder with good/, defects/, masks/")
    p.add_argument("--kolektor-json", type=Path, help="bench.defect_kolektor results to quote")
    args = p.parse_args()
    manifest = load_manifest(args.model)
    h, w = manifest.inputs[0].shape[2] or 1, manifest.inputs[0].shape[3] or 1
    frames, labels, masks = load_set(args.data, w, h)
    table = evaluate(args.model, frames, labels, masks)
    title = f"{int((~labels).sum())} good and {int(labels.sum())} defective synthetic parts (seed 12, unseen)"
    text = markdown(table, title)
    print(text)
    metrics = dict(manifest.metrics, synthetic_eval=table)
    sections = [MARK, "", text, "", per_kind(args.model, args.data, frames, labels), "",
                "Reproduce: `python models/build/defect/build.py --eval-python .venv/bin/python`"]  # fmt: skip
    if args.kolektor_json and args.kolektor_json.is_file():
        kolektor = json.loads(args.kolektor_json.read_text())
        metrics["kolektorsdd"] = kolektor["variants"]
        sections += ["", "## KolektorSDD (real data; same recipe, model not shipped)", "",
                     "Fitted on the 278 good parts of the train split (its 42 defects only set the threshold),"
                     " evaluated on the val split. KolektorSDD is CC BY-NC-SA 4.0: the data and any weights fitted"
                     " on it are non-commercial and are not part of this repository.", "",
                     kolektor["markdown"], "", f"Reproduce: `{kolektor.get('command', KOLEKTOR_CMD)}`"]  # fmt: skip
    write_manifest(args.model, manifest.model_copy(update={"metrics": metrics}))
    card = args.model / CARD_NAME
    text_before = card.read_text(encoding="utf-8").split(MARK)[0].rstrip("\n") + "\n"
    card.write_text(text_before + "\n".join(sections) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
