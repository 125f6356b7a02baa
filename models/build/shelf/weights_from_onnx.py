"""Recovers the trainable weights of a shipped shelf detector from its fp32 ONNX file, as a checkpoint for
finetune.py --init: the export names every initializer after the torch state-dict entry it came from
(`net.body.Conv_41.weight`), so a later stage can continue from the shipped model without the build's
scratch folder.

    python models/build/shelf/weights_from_onnx.py --onnx models/shelf-detector/model.onnx \
        --pretrained models/pretrained/coco-yolox-nano/yolox_nano.onnx --out /tmp/shelf3/shipped.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from yolox_net import ShelfYolox

PREFIX = "net."  # export_yolox.py wraps the detector in an NHWC module whose attribute is `net`


def recover(onnx_path: Path, net: ShelfYolox) -> dict[str, torch.Tensor]:
    """The state dict of `net` with every trained parameter taken from the file; SystemExit when one is missing.

    The graph's constant buffers (slice indices, resize scales) are folded into the file's nodes, not stored
    under their names: they keep the values the pretrained graph gave them, which training never changes.
    """
    stored = {i.name[len(PREFIX) :]: numpy_helper.to_array(i) for i in onnx.load(str(onnx_path)).graph.initializer}
    state = net.state_dict()
    trained = dict(net.named_parameters())
    missing = [k for k, v in trained.items() if k not in stored or tuple(stored[k].shape) != tuple(v.shape)]
    if missing:
        raise SystemExit(f"{onnx_path}: {len(missing)} weights not found by name and shape, e.g. {missing[:3]}")
    return {k: torch.from_numpy(np.array(stored[k], dtype=np.float32)) if k in trained else v for k, v in state.items()}


def check(net: ShelfYolox, onnx_path: Path) -> None:
    """The recovered network gives the file's outputs on a 416x416 input (to float rounding)."""
    import onnxruntime as ort

    probe = np.random.default_rng(0).uniform(0, 255, (1, 416, 416, 3)).astype(np.float32)
    want = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"images": probe})[0]
    with torch.no_grad():
        got = net.eval()(torch.from_numpy(probe).permute(0, 3, 1, 2)).numpy()
    error = float(np.abs(got - want).max())
    print(f"recovered network vs {onnx_path.name}: max |diff| {error:.2e}")
    if error > 1e-3:
        raise SystemExit("the recovered weights do not reproduce the file")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", type=Path, required=True, help="the shipped fp32 model.onnx")
    parser.add_argument("--pretrained", type=Path, required=True, help="the COCO yolox_nano.onnx it started from")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    net = ShelfYolox(args.pretrained)
    state = recover(args.onnx, net)
    net.load_state_dict(state)
    check(net, args.onnx)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), args.out)
    print(f"{args.out}: {len(state)} tensors from {args.onnx}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
