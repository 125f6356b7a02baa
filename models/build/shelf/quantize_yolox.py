"""U8S8 int8 ONNX of the YOLOX shelf detector with the box-decoding tail and the last head convolutions in float.

    python models/build/shelf/quantize_yolox.py --model models/shelf-detector --calibration calib.npy

A uniform int8 graph lost 13-26% of the fp32 mAP on held-out shelves (measured on an early checkpoint): the
exp() of the box sizes and the objectness logits need more than 256 levels. Everything else (the backbone,
the neck and the head towers, >95% of the multiply-adds) runs as QLinearConv. Activation ranges are the mean
of the per-frame min/max (onnxruntime's moving-average calibration), not the extremes over all calibration
frames: with the extremes 2.0.0 kept 87% of its fp32 mAP on hard shelves, with the mean 98% (40 held-out frames).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from edge_agent.runtime.quantize import load_calibration, quantize_onnx, record_int8_variant  # noqa: E402

BODY = "/net/body/"
TOWER_CONVS = 5


def float_nodes(path: Path, towers: bool = False) -> list[str]:
    """Nodes outside the converted body (decode tail) and the body's convolutions that feed it."""
    graph = onnx.load(str(path)).graph
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.name)
    tail = [n.name for n in graph.node if not n.name.startswith(BODY)]
    heads = [
        n.name
        for n in graph.node
        if n.op_type == "Conv" and any(not c.startswith(BODY) for o in n.output for c in consumers.get(o, []))
    ]
    return tail + heads + (tower(graph, heads) if towers else [])


def tower(graph: onnx.GraphProto, heads: list[str], convs: int = TOWER_CONVS) -> list[str]:
    """The box/objectness towers behind the head convolutions: back through Conv, Sigmoid and Mul (SiLU) nodes
    up to `convs` convolutions per level (YOLOX-Nano: a 1x1 stem and two depthwise-separable blocks)."""
    producers = {o: n for n in graph.node for o in n.output}
    by_name = {n.name: n for n in graph.node}
    found: set[str] = set()
    for head in heads:
        frontier, seen_convs = [by_name[head].input[0]], 0
        while frontier and seen_convs < convs:
            node = producers.get(frontier.pop())
            if node is None or node.name in found or node.op_type not in ("Conv", "Sigmoid", "Mul"):
                continue
            found.add(node.name)
            seen_convs += node.op_type == "Conv"
            frontier.extend(i for i in node.input if i in producers)
    return sorted(found)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--calibration", type=Path, required=True)
    parser.add_argument("--method", choices=["minmax", "entropy", "percentile"], default="minmax")
    parser.add_argument("--activations", choices=["uint8", "int8"], default="uint8")
    parser.add_argument("--towers", action="store_true", help="keep the head towers in float too")
    parser.add_argument(
        "--moving-average",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="minmax ranges as the mean of the per-frame ranges (default) or the extremes",
    )
    args = parser.parse_args()
    fp32 = args.model / "model.onnx"
    excluded = float_nodes(fp32, args.towers)
    print(f"{len(excluded)} nodes stay in float", flush=True)
    quantize_onnx(fp32, args.model / "model.int8.onnx", load_calibration(args.calibration), "images",
                  exclude_nodes=excluded, method=args.method, activations=args.activations,
                  moving_average=args.moving_average)  # fmt: skip
    record_int8_variant(args.model, "onnx-fp32", "model.int8.onnx")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
