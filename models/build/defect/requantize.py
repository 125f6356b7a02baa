"""Quantize the shipped defect model's fp32 ONNX file again, with the fit's own calibration set, no retraining.

    python models/build/defect/requantize.py [--model models/defect-synthetic] [--seed 0] [--holdout 0.2]

Rebuilds the synthetic training parts of build.py (seed 11), splits them exactly as `fit defect` did
(--seed, --holdout), takes the fit's calibration images (good parts, half with synthetic defects drawn
on them) and writes the int8 ONNX file with edge_agent.runtime.quantize's settings; the manifest's hash
is updated. Use it when the quantization settings change; the fp32 and TFLite files are not touched.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from edge_agent.runtime.manifest import load_manifest  # noqa: E402
from edge_agent.runtime.quantize import record_int8_variant  # noqa: E402
from edge_agent.tasks.defect.export import quantize_onnx  # noqa: E402
from edge_agent.tasks.defect.fitting import calibration_images, to_inputs  # noqa: E402
from edge_agent.tasks.defect.images import load_folder  # noqa: E402
from edge_agent.tasks.defect.synth import write_set  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=REPO / "models" / "defect-synthetic")
    p.add_argument("--seed", type=int, default=0, help="the fit's --seed")
    p.add_argument("--holdout", type=float, default=0.2, help="the fit's --holdout")
    args = p.parse_args()
    manifest = load_manifest(args.model)
    spec = manifest.inputs[0]
    size = (spec.shape[3] or 0, spec.shape[2] or 0)
    with tempfile.TemporaryDirectory() as tmp:
        write_set(Path(tmp), good=300, defects=0, size=256, seed=11)
        good, _warnings, _size, _channels = load_folder(Path(tmp) / "good", "good", size, 3, None)
    order = np.random.default_rng(args.seed).permutation(len(good.names))
    n_hold = max(4, round(args.holdout * len(order)))
    train_images = good.images[order[n_hold:]]
    calib = to_inputs(calibration_images(train_images, args.seed), np.array(spec.mean), np.array(spec.std))
    entry = manifest.files["onnx-int8"]
    quantize_onnx(args.model / manifest.files["onnx-fp32"].path, args.model / entry.path, calib)
    record_int8_variant(args.model, "onnx-fp32", entry.path)
    print(f"wrote {args.model / entry.path} from {len(calib)} calibration images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
