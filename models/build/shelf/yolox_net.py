"""The COCO YOLOX-Nano as a trainable class-agnostic shelf detector (torch, build-time only).

The pretrained ONNX is cut before its class branch (YOLOX's decoupled head computes objectness from the box
tower, so the 80-class tower is dropped whole) and turned into a torch module by onnx2torch. The exported
graph ends like the first shelf model and an Ultralytics YOLOv8 export: one output [1, 5, N] of cx, cy, w, h
divided by the input size and the product score, so the daemon's `yolov8` decoder reads it with
``normalized_boxes: true`` (one int8 scale then serves boxes and scores alike).
"""

from __future__ import annotations

from pathlib import Path

import onnx
import torch
from onnx2torch import convert
from torch import nn

STRIDES = (8, 16, 32)
# Per level: the box regression map (4 channels) and the objectness logits (before YOLOX's sigmoid).
HEAD_OUTPUTS = (("1062", "1063"), ("1104", "1105"), ("1146", "1147"))


def cut_head(onnx_path: Path) -> onnx.ModelProto:
    """The pretrained graph up to the box and objectness maps of each level."""
    model = onnx.load(str(onnx_path))
    names = [name for pair in HEAD_OUTPUTS for name in pair]
    extractor = onnx.utils.Extractor(model)
    return extractor.extract_model(["images"], names)


class ShelfYolox(nn.Module):
    """Input NCHW float BGR 0..255 (YOLOX's own convention); forward gives [B, 5, N] like the shipped decoder wants."""

    def __init__(self, onnx_path: Path, size: int = 416) -> None:
        super().__init__()
        self.body = convert(cut_head(onnx_path))
        self.size = size
        self.set_size(size)

    def set_size(self, size: int) -> None:
        self.size = size
        grids, strides = [], []
        for s in STRIDES:
            n = size // s
            ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
            grids.append(torch.stack([xs.flatten(), ys.flatten()], 1).float())
            strides.append(torch.full((n * n, 1), float(s)))
        self.register_buffer("grid", torch.cat(grids), persistent=False)
        self.register_buffer("stride", torch.cat(strides), persistent=False)

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Box regressions [B, N, 4] and objectness logits [B, N] over every grid cell of the three levels."""
        outs = self.body(x)
        # Constant shapes (not x.shape): the exported graph then has no Shape/Slice arithmetic for onnx2tf to misread.
        cells = [(self.size // s) ** 2 for s in STRIDES]
        regs = [outs[2 * k].reshape(-1, 4, n) for k, n in enumerate(cells)]
        objs = [outs[2 * k + 1].reshape(-1, n) for k, n in enumerate(cells)]
        return torch.cat(regs, 2).transpose(1, 2), torch.cat(objs, 1)

    def boxes(self, reg: torch.Tensor) -> torch.Tensor:
        """xyxy input pixels, YOLOX's decoding: centre = (offset + cell) * stride, size = exp(log-size) * stride."""
        centre = (reg[..., :2] + self.grid) * self.stride
        half = torch.exp(reg[..., 2:4].clamp(max=8.0)) * self.stride / 2
        return torch.cat([centre - half, centre + half], -1)

    def anchors(self) -> torch.Tensor:
        """The cell centres in pixels, where assignment looks for products."""
        return (self.grid + 0.5) * self.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reg, obj = self.raw(x)
        centre = (reg[..., :2] + self.grid) * self.stride
        size = torch.exp(reg[..., 2:4]) * self.stride
        out = torch.cat([centre / self.size, size / self.size, torch.sigmoid(obj)[..., None]], -1)
        return out.transpose(1, 2)
