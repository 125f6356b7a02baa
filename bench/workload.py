"""What one job's pipeline is fed in the benchmark: its task config with defaults and a timed synthetic source.

The source step is part of the end-to-end figure: image jobs decode a JPEG (what the folder source
and an MJPEG camera do per frame), the sensor job pushes `stride` samples through the real Windower
until a window is emitted. Inputs come from the jobs' own synthetic generators, so no data set is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edge_agent.errors import DataError
from edge_agent.runtime.manifest import Manifest
from edge_agent.tasks.base import Item

SHELF_FRAME = (1280, 720)  # a common shelf camera resolution; composed shelves are resized to it
CLASSIFY_FRAME = (640, 480)
DEFECT_PART = 256  # the defect job's synthetic part size (edge_agent.tasks.defect.synth default)
DEFECT_EVERY = 5  # one part in five is defective, so the snapshot path of defect events is timed too


@dataclass
class Workload:
    """A task config and a source producing the i-th item (timed as the `source` stage)."""

    kind: str
    task_config: Any
    source: Callable[[int], Item]
    description: str


def build_workload(manifest: Manifest, pool: int, seed: int) -> Workload:
    builders: dict[str, Callable[[Manifest, int, int], Workload]] = {
        "classify": _classify,
        "defect": _defect,
        "shelf": _shelf,
        "sensor_anomaly": _sensor,
    }
    if manifest.task not in builders:
        raise DataError(f"model {manifest.name!r}: the benchmark has no workload for task {manifest.task!r}")
    return builders[manifest.task](manifest, max(1, pool), seed)


def _jpeg_source(frames: list[np.ndarray], quality: int = 90) -> Callable[[int], Item]:
    encoded = []
    for frame in frames:
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise DataError("could not encode a synthetic frame as JPEG")
        encoded.append(buf)

    def source(i: int) -> Item:
        frame = cv2.imdecode(encoded[i % len(encoded)], cv2.IMREAD_COLOR)
        if frame is None:
            raise DataError("could not decode a benchmark frame")
        return Item(frame, time.time(), "bench", i, {"filename": f"frame-{i:06d}"})

    return source


def _classify(manifest: Manifest, pool: int, seed: int) -> Workload:
    from edge_agent.config import ClassifyTaskConfig

    rng = np.random.default_rng(seed)
    w, h = CLASSIFY_FRAME
    # Smooth random scenes: upscaled low-resolution noise compresses like a real picture, unlike pixel noise.
    frames = [
        cv2.resize(rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
        for _ in range(pool)
    ]
    return Workload("classify", ClassifyTaskConfig(kind="classify"), _jpeg_source(frames), f"{w}x{h} JPEG frames")


def defect_frames(count: int, seed: int) -> list[np.ndarray]:
    from edge_agent.tasks.defect.synth import DEFECT_KINDS, make_part

    rng = np.random.default_rng(seed)
    frames = []
    for i in range(count):
        kind = DEFECT_KINDS[(i // DEFECT_EVERY) % len(DEFECT_KINDS)] if i % DEFECT_EVERY == DEFECT_EVERY - 1 else None
        frames.append(make_part(rng, DEFECT_PART, kind)[0])
    return frames


def _defect(manifest: Manifest, pool: int, seed: int) -> Workload:
    from edge_agent.tasks.defect.config import DefectTaskConfig

    frames = defect_frames(pool, seed)
    desc = f"{DEFECT_PART}x{DEFECT_PART} synthetic parts (JPEG), 1 in {DEFECT_EVERY} defective"
    return Workload("defect", DefectTaskConfig(kind="defect"), _jpeg_source(frames), desc)


def _shelf(manifest: Manifest, pool: int, seed: int) -> Workload:
    from edge_agent.tasks.shelf.compose import ProductLibrary, ShelfComposer
    from edge_agent.tasks.shelf.config import ShelfTaskConfig
    from edge_agent.tasks.shelf.zones import grid_zones

    rng = np.random.default_rng(seed)
    composer = ShelfComposer(ProductLibrary.procedural(seed))
    w, h = SHELF_FRAME
    frames = [cv2.resize(composer.compose(rng).image, (w, h), interpolation=cv2.INTER_LINEAR) for _ in range(pool)]
    # The shelf job's own latency benchmark counts over the same 4 x 3 grid covering the frame.
    zones = grid_zones((0, 0, w, h), 4, 3, "z")
    config = ShelfTaskConfig.model_validate({"kind": "shelf", "zones": zones, "frame_size": (w, h)})
    desc = f"{w}x{h} composed shelves (procedural products, JPEG), 12 zones covering the frame"
    return Workload("shelf", config, _jpeg_source(frames), desc)


def sensor_samples(mean: np.ndarray, std: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Normal operation around the model's own normalisation: slow sines plus noise, one per channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(count, dtype=np.float64)[:, None]
    phase = rng.uniform(0, 2 * np.pi, mean.shape[0])
    period = rng.uniform(30, 120, mean.shape[0])
    wave = 0.6 * np.sin(2 * np.pi * t / period + phase) + 0.3 * rng.standard_normal((count, mean.shape[0]))
    return (mean + std * wave).astype(np.float32)


def _machine_samples(channels: tuple[str, ...], count: int, seed: int) -> np.ndarray | None:
    """Normal operation of the sensor job's synthetic machine, when the model reads its channels."""
    from edge_agent.tasks.sensor import synth

    if tuple(channels) != tuple(synth.CHANNELS):
        return None
    table = synth.generate(max(count, 120), seed=seed + 100, faults=[])
    values: np.ndarray = table.values[:count].astype(np.float32)
    return values


def _sensor(manifest: Manifest, pool: int, seed: int) -> Workload:
    from edge_agent.sources.windowing import Windower
    from edge_agent.tasks.sensor.config import SensorAnomalyTaskConfig
    from edge_agent.tasks.sensor.scoring import parse_params

    params = parse_params(manifest.params)
    samples = _machine_samples(params.channels, params.size + pool * params.stride, seed)
    if samples is None:  # a model fitted on site names other channels: samples around its normalisation
        samples = sensor_samples(params.mean, params.std, params.size + pool * params.stride, seed)
    feed = _SampleFeed(samples, Windower(params.window, "bench"))
    for _ in range(params.size - params.stride):
        feed.push()  # fill the ring so that every timed step emits a window after `stride` samples

    def source(i: int) -> Item:
        item = None
        while item is None:
            item = feed.push()
        return item

    desc = f"windows of {params.size} x {len(params.channels)} samples, stride {params.stride} (normal operation)"
    return Workload("sensor_anomaly", SensorAnomalyTaskConfig(kind="sensor_anomaly"), source, desc)


class _SampleFeed:
    """Sensor samples at 1 Hz into the real Windower, cycling over a fixed recording."""

    def __init__(self, samples: np.ndarray, windower: Any) -> None:
        self.samples = samples
        self.windower = windower
        self.count = 0
        self.t0 = 1_700_000_000.0

    def push(self) -> Item | None:
        row = self.samples[self.count % len(self.samples)]
        self.count += 1
        item: Item | None = self.windower.push(self.t0 + self.count, row)
        return item
