"""int8 TFLite of the fine-tuned YOLOX shelf detector, calibrated on the same training shelves as the int8 ONNX.

    python models/build/shelf/tflite_yolox.py --onnx /tmp/shelf-yolox/export/model_nchw.onnx \
        --calib /tmp/shelf-yolox/export/calib.npy --work /tmp/shelf-yolox/tf \
        --out models/shelf-detector/model.int8.tflite

Runs onnx2tf (TensorFlow, build venv only). Integer-quantized weights and activations with float input and output
(onnx2tf's *_integer_quant file), like the first shelf model's TFLite. onnx2tf fetches sample pictures from the
network for its own output check; here it is handed the calibration frames instead (nothing is downloaded).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--onnx", type=Path, required=True, help="the NCHW export (onnx2tf rewrites it in place)")
    parser.add_argument("--calib", type=Path, required=True, help=".npy [N, 1, H, W, 3] float BGR 0..255")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import onnx2tf
    import onnx2tf.onnx2tf as core

    frames = np.load(args.calib)[:, 0].astype(np.float32)
    nhwc = args.work / "calib_nhwc.npy"
    args.work.mkdir(parents=True, exist_ok=True)
    np.save(nhwc, frames)
    core.download_test_image_data = lambda: frames[:20] / 255.0  # type: ignore[attr-defined]
    onnx2tf.convert(
        input_onnx_file_path=str(args.onnx),
        output_folder_path=str(args.work),
        output_integer_quantized_tflite=True,
        custom_input_op_name_np_data_path=[["images", str(nhwc), np.zeros((1, 1, 1, 3)), np.ones((1, 1, 1, 3))]],
        not_use_onnxsim=True,
        non_verbose=True,
    )
    produced = sorted(args.work.glob("*_integer_quant.tflite"))
    produced = [p for p in produced if "full_integer" not in p.name]
    if not produced:
        raise SystemExit(f"onnx2tf wrote no *_integer_quant.tflite in {args.work}")
    shutil.copyfile(produced[0], args.out)
    print(f"wrote {args.out} from {produced[0].name}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
