"""Exports the fine-tuned YOLOX shelf detector: fp32 ONNX (NHWC BGR 0..255 input, [1, 5, N] output), the same
graph in NCHW for onnx2tf, and a calibration set from the training shelves (build_yolox.sh does the rest).

    python models/build/shelf/export_yolox.py --weights /tmp/shelf-yolox/run/last.pt \
        --pretrained models/pretrained/coco-yolox-nano/yolox_nano.onnx --shards /tmp/shelf-yolox/train \
        --out models/shelf-detector --work /tmp/shelf-yolox/export
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train import load_shards  # noqa: E402
from yolox_net import ShelfYolox  # noqa: E402


class Nhwc(nn.Module):
    """The TFLite file and the ONNX files share one manifest input: NHWC, as LiteRT wants it."""

    def __init__(self, net: ShelfYolox) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.permute(0, 3, 1, 2))


def export(weights: Path, pretrained: Path, path: Path, size: int) -> Nhwc:
    net = ShelfYolox(pretrained, size)
    net.load_state_dict(torch.load(weights, weights_only=True))
    model = Nhwc(net).eval()
    probe = torch.rand(1, size, size, 3) * 255
    torch.onnx.export(model, (probe,), str(path), input_names=["images"], output_names=["output0"], opset_version=13,
                      dynamo=False)  # fmt: skip
    with torch.no_grad():
        want = model(probe).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": probe.numpy()})[0]
    error = float(np.abs(got - want).max())
    print(f"{path}: onnxruntime vs torch max |diff| {error:.2e}", flush=True)
    if error > 1e-3:
        raise SystemExit("the exported graph does not match torch")
    return model


def calibration(shards: Path, count: int, path: Path) -> None:
    """Training shelves (never the benchmark's held-out ones), one [1, H, W, 3] float batch each."""
    images, _ = load_shards(shards)
    pick = np.random.default_rng(0).choice(len(images), min(count, len(images)), replace=False)
    np.save(path, images[pick].astype(np.float32)[:, None])
    print(f"{path}: {len(pick)} calibration frames", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--pretrained", type=Path, required=True)
    parser.add_argument("--shards", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="model folder")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (calibration set)")
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--calib-count", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    model = export(args.weights, args.pretrained, args.out / "model.onnx", args.size)
    # onnx2tf wants NCHW graphs (it turns them NHWC itself): the same weights without the input permute.
    probe = torch.rand(1, 3, args.size, args.size) * 255
    torch.onnx.export(model.net, (probe,), str(args.work / "model_nchw.onnx"), input_names=["images"],
                      output_names=["output0"], opset_version=13, dynamo=False)  # fmt: skip
    calibration(args.shards, args.calib_count, args.work / "calib.npy")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
