"""Replays a folder of shelf frames through the shelf task and prints counts and stock events as they happen.

    python -m edge_agent.tasks.shelf.replay --frames examples/data/shelf_demo \
        --zones examples/data/shelf_demo/zones.yaml --render var/shelf_demo

No broker needed: a quick way to check zones and thresholds on recorded frames before deploying, and
the shelf demo's offline view (the MQTT demo runs the same task through `edge-agent demo`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import yaml
from pydantic import ValidationError

from edge_agent.errors import EdgeAgentError
from edge_agent.messages import ShelfData
from edge_agent.tasks.base import Item, TaskContext
from edge_agent.tasks.shelf.config import ShelfTaskConfig
from edge_agent.tasks.shelf.draw import render
from edge_agent.tasks.shelf.zones import UsageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def say(text: str) -> None:
    """One line to stdout, flushed: the replay is watched live."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def load_config(path: Path, smoothing_frames: int | None) -> ShelfTaskConfig:
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    block = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    block = {"kind": "shelf", **{k: v for k, v in block.items() if k != "kind"}}
    if smoothing_frames is not None:
        block["smoothing_frames"] = smoothing_frames
    try:
        return ShelfTaskConfig.model_validate(block)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise UsageError(f"{path}: {where}: {first['msg']}") from None


def line(index: int, name: str, data: ShelfData) -> str:
    zones = "  ".join(
        f"{z.zone}={z.count}" + (f"/{z.capacity}" if z.capacity else "") + ("" if z.state == "ok" else f"({z.state})")
        for z in data.zones
    )
    return f"{index:4d} {name:<16} {data.detections:3d} found  {zones}"


def replay(args: argparse.Namespace) -> None:
    from edge_agent.config import LiteRTConfig, OnnxRuntimeConfig
    from edge_agent.runtime.registry import load_model
    from edge_agent.tasks.shelf.task import ShelfTask

    config = load_config(args.zones, args.smoothing_frames)
    frames = (
        sorted(p for p in args.frames.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if args.frames.is_dir() else []
    )
    if not frames:
        raise UsageError(f"{args.frames}: no .jpg/.png frames found")
    runtime = LiteRTConfig(kind="litert") if args.runtime == "litert" else OnnxRuntimeConfig()
    task = ShelfTask(config, load_model(args.model, args.variant, runtime), TaskContext("replay", "local", "replay"))
    if args.render:
        args.render.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(frames):
        frame = cv2.imread(str(path))
        if frame is None:
            say(f"{index:4d} {path.name:<16} unreadable image, skipped")
            continue
        item = Item(frame, float(index) * args.interval_s, "replay", index)
        decoded = task.decode(task.run(task.preprocess([item])), [item])[0]
        out = task.logic(decoded, item)
        if out.data is None or not isinstance(out.data, ShelfData):
            say(f"{index:4d} {path.name:<16} blank frame: not counted")
            continue
        say(line(index, path.name, out.data))
        for event in out.events:
            say(f"     EVENT {event.event} on {event.subject}: {event.details}")
        if args.render:
            zones = task.counter.zones(decoded.width, decoded.height)
            banner = [f"frame {index}"] + [f"{e.event} {e.subject}" for e in out.events]
            picture = render(
                frame,
                decoded.detections.boxes,
                [z.polygon for z in zones],
                [z.config.name for z in zones],
                out.data.zones,
                banner,
            )
            cv2.imwrite(str(args.render / f"{path.stem}.jpg"), picture)
        if args.delay_s:
            time.sleep(args.delay_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=Path, required=True, help="folder of frames, read in name order")
    parser.add_argument("--zones", type=Path, required=True, help="YAML shelf task block (zones, frame_size, ...)")
    parser.add_argument("--model", type=Path, default=Path("models/shelf-detector"))
    parser.add_argument("--variant", help="manifest variant (default: the runtime's int8 file)")
    parser.add_argument("--runtime", choices=["onnxruntime", "litert"], default="onnxruntime")
    parser.add_argument("--smoothing-frames", type=int, help="override the config's smoothing window")
    parser.add_argument("--interval-s", type=float, default=1.0, help="capture time between frames (event cooldown)")
    parser.add_argument("--delay-s", type=float, default=0.0, help="pause between frames, to watch it live")
    parser.add_argument("--render", type=Path, help="write annotated frames here")
    args = parser.parse_args(argv)
    try:
        replay(args)
    except (UsageError, EdgeAgentError) as exc:
        sys.stderr.write(f"shelf replay: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
