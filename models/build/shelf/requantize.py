"""Quantize the shipped detector's fp32 ONNX file again with the export's own calibration shelves, no retraining.

    BUILD_PY models/build/shelf/requantize.py --data /path/to/grocery-store [--work /tmp/shelf-calib]

The export calibrated on the first 200 composed training-split shelves (shard seed 1000, the first shard
build.sh writes); the same 200 are composed again here (composition is seeded) and the int8 ONNX file is
written with edge_agent.runtime.quantize's settings, box decoding left in float; the manifest's hash is
updated. Use it when the quantization settings change; the fp32 and TFLite files are not touched.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from export import calibration_images, quantize_onnx  # noqa: E402

from edge_agent.runtime.manifest import load_manifest  # noqa: E402
from edge_agent.runtime.quantize import record_int8_variant  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Grocery Store Dataset folder")
    parser.add_argument("--work", type=Path, default=Path("/tmp/shelf-calib"))
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "shelf-detector")
    args = parser.parse_args()
    if not (args.work / "shard-001000.npz").is_file():
        subprocess.run([sys.executable, str(HERE / "make_dataset.py"), "--data", str(args.data), "--out",
                        str(args.work), "--count", "200", "--seed", "1", "--workers", "1"], check=True)  # fmt: skip
    manifest = load_manifest(args.model)
    entry = manifest.files["onnx-int8"]
    quantize_onnx(args.model / manifest.files["onnx-fp32"].path, args.model / entry.path,
                  calibration_images(args.work, 200))  # fmt: skip
    record_int8_variant(args.model, "onnx-fp32", entry.path)
    print(f"wrote {args.model / entry.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
