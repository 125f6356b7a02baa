"""The shelf detector rebuilt in Keras (for the int8 TFLite file), with the torch weights copied layer by layer."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import torch
from keras import layers, ops
from model import NECK, SIZE, WIDTHS, ShelfNet


class Decode(layers.Layer):
    """Raw head outputs [1, N, 5] -> [1, 5, N] of normalised cx, cy, w, h and score, as ShelfNet.forward."""

    def __init__(self, anchors: np.ndarray, reach: np.ndarray, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.anchors = anchors.astype(np.float32)
        self.reach = reach.astype(np.float32)[:, None]

    def call(self, raw: Any) -> Any:
        dist = ops.sigmoid(raw[..., :4]) * self.reach
        top_left = self.anchors - dist[..., :2]
        bottom_right = self.anchors + dist[..., 2:]
        cxcy = (top_left + bottom_right) / 2 / SIZE
        wh = (bottom_right - top_left) / SIZE
        out = ops.concatenate([cxcy, wh, ops.sigmoid(raw[..., 4:])], axis=-1)
        return ops.transpose(out, (0, 2, 1))


def _conv(x: Any, cout: int, k: int, s: int, name: str, relu: bool = True) -> Any:
    # torch pads k//2 on every side; Keras "same" with stride 2 pads only right/bottom, so pad explicitly.
    if s == 2:
        x = layers.ZeroPadding2D(k // 2)(x)
    x = layers.Conv2D(cout, k, s, padding="valid" if s == 2 else "same", name=name)(x)
    return layers.ReLU()(x) if relu else x


def build_keras(anchors: np.ndarray, reach: np.ndarray, nc: int = 1) -> keras.Model:
    w, n = WIDTHS, NECK
    inp = keras.Input((SIZE, SIZE, 3), batch_size=1, name="images")
    x = _conv(inp, w[0], 3, 2, "stem_0")
    x = _conv(_conv(x, w[1], 3, 2, "s2_0_0"), w[1], 3, 1, "s2_1_0")
    c3 = _conv(_conv(x, w[2], 3, 2, "s3_0_0"), w[2], 3, 1, "s3_1_0")
    c4 = _conv(_conv(c3, w[3], 3, 2, "s4_0_0"), w[3], 3, 1, "s4_1_0")
    c5 = _conv(_conv(c4, w[4], 3, 2, "s5_0_0"), w[4], 3, 1, "s5_1_0")
    p5 = _conv(c5, n, 1, 1, "lat5_0")
    up = layers.UpSampling2D(2, interpolation="nearest")
    p4 = _conv(layers.Add()([_conv(c4, n, 1, 1, "lat4_0"), up(p5)]), n, 3, 1, "top4_0")
    p3 = _conv(layers.Add()([_conv(c3, n, 1, 1, "lat3_0"), up(p4)]), n, 3, 1, "top3_0")
    maps = []
    for i, p in enumerate((p3, p4, p5)):
        head = _conv(_conv(p, n, 3, 1, f"heads_{i}_0_0"), 4 + nc, 1, 1, f"heads_{i}_1", relu=False)
        maps.append(layers.Reshape((-1, 4 + nc))(head))
    raw = layers.Concatenate(axis=1)(maps)
    return keras.Model(inp, Decode(anchors, reach)(raw), name="shelf_detector")


def copy_weights(model: ShelfNet, keras_model: keras.Model) -> None:
    """Copy every (BatchNorm-folded) torch Conv2d into the Keras layer of the same dotted name."""
    copied = 0
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Conv2d):
            continue
        layer = keras_model.get_layer(name.replace(".", "_"))
        kernel = module.weight.detach().numpy().transpose(2, 3, 1, 0)  # OIHW -> HWIO
        assert module.bias is not None, "fold BatchNorm (model.fuse) before copying"
        layer.set_weights([kernel, module.bias.detach().numpy()])
        copied += 1
    convs = [layer for layer in keras_model.layers if isinstance(layer, layers.Conv2D)]
    assert copied == len(convs), f"copied {copied} convolutions, Keras has {len(convs)}"
