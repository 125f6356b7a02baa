"""The shelf detector network (torch): a tiny CNN backbone, a top-down FPN and an anchor-free YOLOv8-style head.

The exported graph ends like an Ultralytics YOLOv8 export: one output [1, 4 + nc, N] of cx, cy, w, h
and class scores over the anchor points of strides 8, 16 and 32, so the daemon's `yolov8` decoder
reads it. Boxes are divided by the input size inside the graph (``normalized_boxes: true`` in the
manifest), because int8 files quantize the whole output with one scale: pixels (0..320) next to
scores (0..1) would leave the scores about one quantization step.
"""

from __future__ import annotations

import torch
from torch import nn

SIZE = 320
STRIDES = (8, 16, 32)
REACH = 8.0  # a box side may reach this many strides from its anchor point
WIDTHS = (8, 16, 32, 48, 64)  # backbone widths: small enough to train on two shared CPU cores
NECK = 32


def conv(cin: int, cout: int, k: int = 3, s: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ShelfNet(nn.Module):
    """Input NHWC float RGB 0..1 [1, 320, 320, 3] (same layout as the TFLite file); output [1, 5, 2100]."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS, neck: int = NECK, nc: int = 1) -> None:
        super().__init__()
        w = widths
        self.stem = conv(3, w[0], 3, 2)  # 160
        self.s2 = nn.Sequential(conv(w[0], w[1], 3, 2), conv(w[1], w[1]))  # 80
        self.s3 = nn.Sequential(conv(w[1], w[2], 3, 2), conv(w[2], w[2]))  # 40, stride 8
        self.s4 = nn.Sequential(conv(w[2], w[3], 3, 2), conv(w[3], w[3]))  # 20, stride 16
        self.s5 = nn.Sequential(conv(w[3], w[4], 3, 2), conv(w[4], w[4]))  # 10, stride 32
        self.lat3, self.lat4, self.lat5 = conv(w[2], neck, 1), conv(w[3], neck, 1), conv(w[4], neck, 1)
        self.top4, self.top3 = conv(neck, neck), conv(neck, neck)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.heads = nn.ModuleList(nn.Sequential(conv(neck, neck), nn.Conv2d(neck, 4 + nc, 1)) for _ in STRIDES)
        self.nc = nc
        anchors, strides = make_anchors()
        self.register_buffer("anchors", anchors, persistent=False)
        self.register_buffer("strides", strides, persistent=False)
        for head in self.heads:
            last = head[-1]
            assert isinstance(last, nn.Conv2d)
            nn.init.constant_(last.bias[4:], -4.0)  # start with few confident boxes: a stable focal-free BCE
            nn.init.constant_(last.bias[:4], -1.0)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3 = self.s3(self.s2(self.stem(x)))
        c4 = self.s4(c3)
        c5 = self.s5(c4)
        p5 = self.lat5(c5)
        p4 = self.top4(self.lat4(c4) + self.up(p5))
        p3 = self.top3(self.lat3(c3) + self.up(p4))
        return [head(p) for head, p in zip(self.heads, (p3, p4, p5))]

    def raw(self, x_nhwc: torch.Tensor) -> torch.Tensor:
        """Head outputs flattened over anchors: [B, N, 4 + nc] (logits)."""
        maps = self.features(x_nhwc.permute(0, 3, 1, 2))
        return torch.cat([m.flatten(2) for m in maps], dim=2).transpose(1, 2)

    def boxes(self, raw: torch.Tensor) -> torch.Tensor:
        """xyxy pixels from the distance logits."""
        dist = torch.sigmoid(raw[..., :4]) * (REACH * self.strides[:, None])
        xy = self.anchors
        return torch.cat([xy - dist[..., :2], xy + dist[..., 2:]], dim=-1)

    def forward(self, x_nhwc: torch.Tensor) -> torch.Tensor:
        raw = self.raw(x_nhwc)
        xyxy = self.boxes(raw)
        cxcy = (xyxy[..., :2] + xyxy[..., 2:]) / 2
        wh = xyxy[..., 2:] - xyxy[..., :2]
        out = torch.cat([cxcy / SIZE, wh / SIZE, torch.sigmoid(raw[..., 4:])], dim=-1)
        return out.transpose(1, 2)


def make_anchors() -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor point centres (N x 2, pixels) and their strides (N), row-major per level like the head maps."""
    points, strides = [], []
    for s in STRIDES:
        n = SIZE // s
        ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        points.append(torch.stack([xs.flatten(), ys.flatten()], 1).float().add(0.5).mul(s))
        strides.append(torch.full((n * n,), float(s)))
    return torch.cat(points), torch.cat(strides)


def fuse(model: ShelfNet) -> ShelfNet:
    """Fold every BatchNorm into the convolution before it (export and Keras transfer see plain convs)."""
    for module in model.modules():
        if isinstance(module, nn.Sequential) and len(module) == 3 and isinstance(module[1], nn.BatchNorm2d):
            conv_, bn = module[0], module[1]
            assert isinstance(conv_, nn.Conv2d)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused = nn.Conv2d(
                conv_.in_channels, conv_.out_channels, conv_.kernel_size, conv_.stride, conv_.padding, bias=True
            )
            fused.weight.data = conv_.weight.data * scale[:, None, None, None]
            fused.bias.data = bn.bias.data - bn.running_mean * scale
            module[0], module[1] = fused, nn.Identity()
    return model
