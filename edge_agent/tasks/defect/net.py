"""The defect segmentation network and its self-supervised training loop (torch, used by `fit` only).

A small fully convolutional net maps an image to an anomaly logit per 4 x 4 pixel cell. It is
trained from good images alone: synthetic anomalies (anomalies.py) are drawn on random crops and
the net learns to segment them. The daemon never imports this module; torch is imported lazily so
that the package type-checks and installs without the `train` extra.
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.errors import RuntimeUnavailableError
from edge_agent.tasks.defect.anomalies import add_anomalies

# name, in, out, stride, dilation (3x3 conv + BN + ReLU each); "lat" and "head" are 1x1 convs with bias.
Layer = tuple[str, str, str, int, int]
LAYERS: list[Layer] = [
    ("s1", "c", "w", 2, 1),
    ("s2", "w", "2w", 2, 1),
    ("s3", "2w", "2w", 1, 1),
    ("s4", "2w", "4w", 2, 1),
    ("s5", "4w", "4w", 1, 2),
    ("s6", "4w", "4w", 1, 4),
    ("d1", "2w", "2w", 1, 1),
]
MAP_STRIDE = 4
SCORE_POOL = 3
# Two constant channels (x and y from -1 to 1) let the net know where in the image a cell is, so a
# feature missing from where it belongs on a fixtured part can be told from plain surface (CoordConv).
COORD_CHANNELS = 2


def coord_grid(height: int, width: int) -> np.ndarray:
    """2 x height x width float32: x then y, -1 at the top left to 1 at the bottom right."""
    ys, xs = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    return np.stack([xs, ys]).astype(np.float32)


def import_torch() -> Any:
    try:
        return importlib.import_module("torch")
    except ImportError as exc:
        raise RuntimeUnavailableError(
            "fitting a defect model needs torch: pip install 'edge-agent[train]' (CPU: torch==2.13.0)"
        ) from exc


def channels_of(spec: str, channels: int, width: int) -> int:
    return channels if spec == "c" else width * (int(spec[:-1]) if spec[:-1] else 1)


def build_net(channels: int, width: int = 16) -> Any:
    """The torch module; forward(x) returns logits at 1/4 resolution."""
    torch = import_torch()
    nn = torch.nn
    blocks = {}
    for name, cin, cout, stride, dil in LAYERS:
        i, o = channels_of(cin, channels + COORD_CHANNELS, width), channels_of(cout, channels, width)
        blocks[name] = nn.Sequential(
            nn.Conv2d(i, o, 3, stride, padding=dil, dilation=dil, bias=False), nn.BatchNorm2d(o), nn.ReLU()
        )
    blocks["lat"] = nn.Conv2d(4 * width, 2 * width, 1)
    blocks["head"] = nn.Conv2d(2 * width, 1, 1)

    def forward(self: Any, x: Any) -> Any:
        b = self.blocks
        f4 = b["s3"](b["s2"](b["s1"](x)))
        f8 = b["s6"](b["s5"](b["s4"](f4)))
        up = torch.nn.functional.interpolate(b["lat"](f8), scale_factor=2, mode="nearest")
        return b["head"](b["d1"](f4 + up))

    def init(self: Any) -> None:
        nn.Module.__init__(self)
        self.blocks = nn.ModuleDict(blocks)

    cls = type("DefectNet", (nn.Module,), {"__init__": init, "forward": forward})
    return cls()


def build_export_wrapper(net: Any, height: int, width: int) -> Any:
    """Wraps the net so the exported graph returns (anomaly map in 0..1, image score) and does all the work."""
    torch = import_torch()
    functional = torch.nn.functional
    coords = torch.from_numpy(coord_grid(height, width))[None]

    def forward(self: Any, x: Any) -> tuple[Any, Any]:
        amap = torch.sigmoid(self.net(torch.cat([x, coords], dim=1)))
        pooled = functional.avg_pool2d(amap, SCORE_POOL, stride=1)
        return amap, torch.amax(pooled, dim=(2, 3))

    def init(self: Any) -> None:
        torch.nn.Module.__init__(self)
        self.net = net

    cls = type("DefectExport", (torch.nn.Module,), {"__init__": init, "forward": forward})
    return cls().eval()


@dataclass
class TrainSettings:
    steps: int = 1500
    batch: int = 16
    crop: int = 128
    lr: float = 3e-3
    width: int = 16
    threads: int = 2
    seed: int = 0
    anomaly_share: float = 0.5


def _offset(room: int, rng: np.random.Generator) -> int:
    # Crops touch the image border half of the time: uniform offsets would rarely show the borders, and
    # then normal border structure (part edges, fixtures) looks anomalous to the model.
    pick = rng.random()
    return 0 if pick < 0.25 else room if pick < 0.5 else int(rng.integers(0, room + 1))


def random_crop(
    image: np.ndarray, crop_h: int, crop_w: int, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[int, int]]:
    y, x = _offset(image.shape[0] - crop_h, rng), _offset(image.shape[1] - crop_w, rng)
    return image[y : y + crop_h, x : x + crop_w], (y, x)


def make_batch(
    images: np.ndarray, settings: TrainSettings, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random crops of good images with their coordinates, about half with synthetic anomalies; masks
    pooled to the map grid."""
    n, h, w, _ = images.shape
    ch, cw = min(settings.crop, h) // MAP_STRIDE * MAP_STRIDE, min(settings.crop, w) // MAP_STRIDE * MAP_STRIDE
    grid = coord_grid(h, w)
    xs, cs, ys = [], [], []
    for _ in range(settings.batch):
        crop, (y0, x0) = random_crop(images[int(rng.integers(n))], ch, cw, rng)
        cs.append(grid[:, y0 : y0 + ch, x0 : x0 + cw])
        mask = np.zeros(crop.shape[:2], np.float32)
        if rng.random() < settings.anomaly_share:
            # half the pasted patches come from the same crop: a feature covered by the part's own surface
            donor = crop if rng.random() < 0.5 else random_crop(images[int(rng.integers(n))], ch, cw, rng)[0]
            crop, mask = add_anomalies(crop, donor, rng, count=int(rng.choice([1, 1, 2])))
        gain = rng.uniform(0.9, 1.1)  # lighting drift on the line must stay "good"
        xs.append(np.clip(crop.astype(np.float32) * gain, 0, 255))
        ys.append(mask.reshape(ch // MAP_STRIDE, MAP_STRIDE, cw // MAP_STRIDE, MAP_STRIDE).max(axis=(1, 3)))
    return np.stack(xs).transpose(0, 3, 1, 2), np.stack(cs), np.stack(ys)[:, None]


def focal_loss(torch: Any, logits: Any, target: Any, gamma: float = 2.0) -> Any:
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    pt = p * target + (1 - p) * (1 - target)
    return ((1 - pt) ** gamma * bce).mean() * 10.0


Progress = Callable[[int, int, float, float], None]


def train(
    images: np.ndarray, mean: np.ndarray, std: np.ndarray, settings: TrainSettings, progress: Progress | None = None
) -> Any:
    """Fit the net on good images (N x H x W x C uint8); return it in eval mode."""
    torch = import_torch()
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    rng = np.random.default_rng(settings.seed)
    net = build_net(images.shape[3], settings.width)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * s / settings.steps))
    )
    mul = torch.tensor((1.0 / 255.0) / std, dtype=torch.float32).view(1, -1, 1, 1)
    add = torch.tensor(-mean / std, dtype=torch.float32).view(1, -1, 1, 1)
    net.train()
    started, smoothed = time.monotonic(), 0.0
    for step in range(settings.steps):
        x, coords, y = make_batch(images, settings, rng)
        logits = net(torch.cat([torch.from_numpy(x) * mul + add, torch.from_numpy(coords)], dim=1))
        loss = focal_loss(torch, logits, torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        value = float(loss.detach())
        smoothed = value if step == 0 else 0.95 * smoothed + 0.05 * value
        if progress is not None:
            progress(step + 1, settings.steps, smoothed, time.monotonic() - started)
    return net.eval()
