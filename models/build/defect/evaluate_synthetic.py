"""Evaluate a defect model folder on a synthetic evaluation set and write the figures into its card.

    python models/build/defect/evaluate_synthetic.py --model models/defect-synthetic --data artifacts/defect-build/eval

Adds `synthetic_eval` (per variant) to the manifest's metrics and a section to MODEL_CARD.md, with the
verdict on every demo part; quotes the KolektorSDD and ELPV tables from bench.defect_kolektor's and
bench.defect_elpv's JSON when they exist (those models are fitted on non-commercial data, never shipped).
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

KOLEKTOR_CMD = "OPENBLAS_NUM_THREADS=1 python -m bench.defect_kolektor --data PATH/TO/kolektorsdd --fit"
BUILD_CMD = "OPENBLAS_NUM_THREADS=1 python models/build/defect/build.py --eval-python .venv/bin/python"
ELPV_CMD = "OPENBLAS_NUM_THREADS=1 python -m bench.defect_elpv --data PATH/TO/elpv-mono --fit"
MARK = "\n## Synthetic evaluation set"
RECIPE = """## Why this recipe

- Patch features from a network pretrained on ImageNet, compared with a memory bank of good patches
  (PatchCore-style), because every strong good-parts-only method starts from pretrained features; the
  earlier recipe (a small network trained from scratch on synthetic defects) reached image AUROC 0.79 on
  KolektorSDD and missed 86-99% of real defects at its own threshold. It stays as `--recipe autoencoder`
  for one release so a site can refit an existing model the old way and compare; it is not the default
  and needs PyTorch and TensorFlow.
- A memory bank rather than a per-location Gaussian (PaDiM-style): parts on a line shift and turn, and a
  nearest-neighbour bank does not assume that a given pixel always shows the same feature.
- Strides 8 and 16 of MobileNetV2 (blocks 5 and 12), input at most 256x256 pixels of area.
- Each cell's distance is judged against what good parts give at that cell (a z-score from the mean and
  spread of out-of-fold good distance maps). Profiling the raw distance map showed why: good parts' highest
  cell lay on the border of the map in nearly every image (KolektorSDD: 27 of the first 30 good parts),
  so the score measured the frame, not the part. Before -> after (fit defaults, int8 ONNX / fp32 / int8
  TFLite): KolektorSDD val (69 good, 10 defective) image AUROC 0.861 / 0.858 / 0.851 -> 0.841 / 0.873 /
  0.849 and misses at the good-parts threshold 70 / 70 / 80% -> 30 / 30 / 30% (false rejects 2.9 / 1.5 /
  1.5% -> 2.9 / 4.3 / 4.3%); with all 52 defective parts (same banks, raw distances vs z map) AUROC 0.77-0.79
  -> 0.87-0.89 and pixel AUROC 0.88-0.91 -> 0.95-0.96; ELPV AUROC 0.940 / 0.941 / 0.939 -> 0.947 / 0.948 /
  0.948 and misses 41 / 36 / 39% -> 31 / 32 / 32% at 0.4% false rejects. Ten val defects move an AUROC by
  about 0.05 per part, so the 52-part figures are the ones to compare.
- The z map holds with few good images too (fp32, same banks, a random 30 or 100 of the good images):
  KolektorSDD AUROC 0.70 -> 0.86 (30) and 0.76 -> 0.86 (100), ELPV 0.88 -> 0.90 and 0.93 -> 0.93; each
  cell's mean and spread are pulled toward the whole map's as if 20 more images had shown it.
- int8 ranges calibrated on 96 good images instead of 32 (int8 ONNX on KolektorSDD, 52 defects, same
  protocol: 0.860 -> 0.874; int8 / fp32 AUROC on ELPV 0.997 -> 0.999).
- Tried and not kept (fp32, same protocol, both sets): a larger input (KolektorSDD 240x608 and 320x800:
  AUROC 0.88-0.90 with the z map, 0.62-0.69 without it, against 0.90 at 160x400; the border effect grows
  with the grid, the rest is the receptive field: a stride-8 patch of MobileNetV2 covers less of the
  surface texture); a bank of 4096 or 8192 (no gain); the 192-channel expansion at stride 8, the
  576-channel one at stride 16, stride 4 or stride 32 added (0.67-0.90, none better on both sets); 1x1 or
  5x5 pooling instead of 3x3 (worse); mean of the top 3-20 cells instead of the maximum (within 0.005 on
  both sets with the z map, and a maximum keeps a one-cell defect); 10 folds instead of 5 (no gain);
  reflect-padding the input against the border effect (worse than the z map); per-tensor int8 weights in
  the ONNX backbone (KolektorSDD 0.87 -> 0.90, but ELPV 0.95 -> 0.86).
"""
PI5 = """## On a Raspberry Pi 5 (expected, not measured: no Pi was at hand)

Per item at 256x256: the cut backbone is about 0.26 G multiply-adds (MobileNetV2 up to block 12; the full
224x224 classifier is 0.30 G) and the nearest-neighbour product 1024 patches x 2048 bank rows x 128
features = 0.27 G multiply-adds in float32. A Cortex-A76 core at 2.4 GHz does 16 float32 FLOP per cycle
at best (NEON, two FMA pipes): the product takes about 20-35 ms on one core at the 40-60% of peak that
OpenBLAS reaches; the int8 backbone with XNNPACK's dot-product kernels 10-20 ms. Expect 35-60 ms per item
on one core, well under the 100 ms budget, and about half with two cores (or with `--bank 1024`).
"""


def load_set(data: Path) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray | None]]:
    """Frames, labels and masks at the frames' own size."""
    frames, labels, masks = [], [], []
    for path in sorted((data / "good").glob("*.jpg")):
        frames.append(cv2.imread(str(path), cv2.IMREAD_COLOR))
        labels.append(False)
        masks.append(None)
    for path in sorted((data / "defects").glob("*.jpg")):
        frames.append(cv2.imread(str(path), cv2.IMREAD_COLOR))
        labels.append(True)
        mask = cv2.imread(str(data / "masks" / f"{path.stem}.png"), cv2.IMREAD_GRAYSCALE)
        masks.append((mask > 64).astype(np.uint8))
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


def demo_verdicts(model: Path, demo: Path) -> str:
    """Pass/fail of every demo part with the shipped default variant (the demo must pass good parts, fail defects)."""
    from edge_agent.tasks.defect.evaluate import run_variant

    parts = sorted(demo.glob("*.jpg"))
    result = run_variant(model, "onnx-int8", [cv2.imread(str(p), cv2.IMREAD_ANYCOLOR) for p in parts])
    t = float(result.threshold or 0)
    wrong = [p.name for p, s in zip(parts, result.scores) if (s >= t) == p.stem.endswith("_good")]
    good = sum(p.stem.endswith("_good") for p in parts)
    return (f"Demo parts (`{demo.relative_to(REPO) if demo.is_relative_to(REPO) else demo}`, int8 ONNX): {good} good"
            f" and {len(parts) - good} defective; wrongly judged: {', '.join(wrong) or 'none'}.")  # fmt: skip


def table_markdown(data: dict[str, object]) -> str:
    """The benchmark's table drawn again with the current layout (its first line is the title)."""
    from bench.defect_common import markdown

    lines = str(data["markdown"]).split("\n\n", 2)
    table = markdown(data["variants"], lines[0])  # type: ignore[arg-type]
    return table + ("\n\n" + lines[2] if len(lines) > 2 else "")


def real_data_section(key: str, data: dict[str, object], title: str, cmd: str, metrics: dict[str, object]) -> list[str]:
    metrics[key] = data["variants"]
    fit = data.get("fit_metrics") or {}
    assert isinstance(fit, dict)
    return ["", f"## {title} (real data; fit defaults, model not shipped)", "",
            f"Fitted with `edge-agent fit defect --good GOOD --out MODEL` (defaults) on {fit.get('good_images')} good"
            f" images in {fit.get('fit_seconds')} s ({fit.get('fit_cpu_seconds')} CPU s); the threshold comes from"
            " good parts alone. The data set is CC BY-NC-SA 4.0: the data and any model fitted on it are"
            " non-commercial and are not part of this repository. Intervals: 95% Clopper-Pearson.", "",
            table_markdown(data), "", f"Reproduce: `OPENBLAS_NUM_THREADS=1 {data.get('command', cmd)}`"]  # fmt: skip


GOALS = {"kolektorsdd": 0.95, "kolektorsdd_all_defects": 0.95, "elpv_mono": 0.90}  # image AUROC goals of the issue


def _mark(ok: bool, text: str) -> str:
    return text if ok else f"{text} MISSED"


def goals_section(metrics: dict[str, object]) -> list[str]:
    """Each quoted real-data table against the goals, per variant: met or MISSED, with the figures."""
    lines = ["", "## Goals on real data (fit defaults, threshold from good parts alone)", "",
             "Goals: image AUROC >= 0.95 on KolektorSDD and >= 0.90 on ELPV; false rejects <= 2% and misses"
             " <= 20% at the fitted threshold; int8 >= 99% of fp32 AUROC.", "",
             "| set | variant | AUROC | false rejects | misses | int8 / fp32 |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for key, goal in GOALS.items():
        table = metrics.get(key)
        if not isinstance(table, dict):
            continue
        for variant, e in table.items():
            fr, miss, ratio = e["false_rejects"]["rate"], e["misses"]["rate"], e["auroc_vs_fp32"]
            vs = "" if variant == "onnx-fp32" else _mark(ratio >= 0.99, str(ratio))
            auroc = _mark(e["image_auroc"] >= goal, str(e["image_auroc"]))
            lines.append(f"| {key} | {variant} | {auroc} | {_mark(fr <= 0.02, f'{fr:.1%}')} |"
                         f" {_mark(miss <= 0.20, f'{miss:.1%}')} | {vs} |")  # fmt: skip
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="folder with good/, defects/, masks/")
    p.add_argument("--kolektor-json", type=Path, help="bench.defect_kolektor results to quote")
    p.add_argument("--elpv-json", type=Path, help="bench.defect_elpv results to quote")
    p.add_argument("--kolektor-all-json", type=Path, help="bench.defect_kolektor --train-defects results to quote")
    p.add_argument("--demo", type=Path, help="the demo part folder: every part's verdict goes into the card")
    args = p.parse_args()
    manifest = load_manifest(args.model)
    frames, labels, masks = load_set(args.data)
    table = evaluate(args.model, frames, labels, masks)
    title = f"{int((~labels).sum())} good and {int(labels.sum())} defective synthetic parts (seed 12, unseen)"
    text = markdown(table, title)
    print(text)
    metrics = dict(manifest.metrics, synthetic_eval=table)
    sections = [MARK, "", text, "", per_kind(args.model, args.data, frames, labels), "",
                f"Reproduce: `{BUILD_CMD}`", "", RECIPE, PI5]  # fmt: skip
    if args.demo:
        sections += ["", demo_verdicts(args.model, args.demo)]
    for key, path, title, cmd in (
        ("kolektorsdd", args.kolektor_json, "KolektorSDD", KOLEKTOR_CMD),
        ("kolektorsdd_all_defects", args.kolektor_all_json, "KolektorSDD, all 52 defective parts", KOLEKTOR_CMD),
        ("elpv_mono", args.elpv_json, "ELPV", ELPV_CMD),
    ):
        if path and path.is_file():
            sections += real_data_section(key, json.loads(path.read_text()), title, cmd, metrics)
    sections += goals_section(metrics)
    write_manifest(args.model, manifest.model_copy(update={"metrics": metrics}))
    card = args.model / CARD_NAME
    text_before = card.read_text(encoding="utf-8").split(MARK)[0].rstrip("\n") + "\n"
    card.write_text(text_before + "\n".join(sections) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
