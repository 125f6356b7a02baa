"""`edge-agent zones`: propose shelf zones for a camera view and print them as the task config's YAML block.

    edge-agent zones grid --image snapshot.jpg --rect 40,30,600,450 --rows 3 --cols 4 --render zones.png
    edge-agent zones auto --image snapshot.jpg --model models/shelf-detector --render zones.png
    edge-agent zones render --image snapshot.jpg --zones config.yaml --out zones.png

`grid` splits a rectangle into rows x columns; `auto` runs the detector and proposes one zone per shelf
row it finds (capacity = facings seen now, so take the snapshot of a full shelf); `render` draws
the zones of a YAML file (a zones block or a whole agent config) over the snapshot for checking.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from pydantic import ValidationError

from edge_agent.errors import EdgeAgentError
from edge_agent.tasks.shelf.config import ZoneConfig
from edge_agent.tasks.shelf.draw import render


class UsageError(Exception):
    """A user mistake: printed as one line, exit code 2."""


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path)) if path.is_file() else None
    if image is None:
        raise UsageError(f"{path}: not a readable image")
    return image


def parse_rect(text: str | None, width: int, height: int) -> tuple[float, float, float, float]:
    if text is None:
        return 0.0, 0.0, float(width), float(height)
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--rect {text!r}: expected x0,y0,x1,y1 in frame pixels") from None
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise UsageError(f"--rect {text!r} must lie inside the {width}x{height} frame with x0 < x1 and y0 < y1")
    return x0, y0, x1, y1


def grid_zones(rect: tuple[float, float, float, float], rows: int, cols: int, prefix: str) -> list[dict[str, Any]]:
    """rows x cols rectangles over rect, named {prefix}{row}-{col} from the top-left, 1-based."""
    x0, y0, x1, y1 = rect
    xs, ys = np.linspace(x0, x1, cols + 1), np.linspace(y0, y1, rows + 1)
    zones = []
    for r in range(rows):
        for c in range(cols):
            polygon = [[xs[c], ys[r]], [xs[c + 1], ys[r]], [xs[c + 1], ys[r + 1]], [xs[c], ys[r + 1]]]
            zones.append({"name": f"{prefix}{r + 1}-{c + 1}", "polygon": [[round(x), round(y)] for x, y in polygon]})
    return zones


def row_zones(boxes: np.ndarray, width: int, height: int, prefix: str) -> list[dict[str, Any]]:
    """One zone per shelf row: box centres are split into rows wherever their heights stop overlapping."""
    if len(boxes) == 0:
        return []
    order = np.argsort((boxes[:, 1] + boxes[:, 3]) / 2)
    groups: list[list[int]] = [[int(order[0])]]
    for i in order[1:].tolist():
        last = boxes[groups[-1]]
        centre = (boxes[i, 1] + boxes[i, 3]) / 2
        if centre > np.median(last[:, 3]):  # below the bottom of the current row's products: a new row
            groups.append([i])
        else:
            groups[-1].append(i)
    spans = [_row_span(boxes[group], width, height) for group in groups]
    for upper, lower in itertools.pairwise(spans):  # rows never overlap: a product counts in one row only
        if upper[3] > lower[1]:
            upper[3] = lower[1] = (upper[3] + lower[1]) / 2
    zones = []
    for k, (group, (x0, y0, x1, y1)) in enumerate(zip(groups, spans)):
        polygon = [[round(x0), round(y0)], [round(x1), round(y0)], [round(x1), round(y1)], [round(x0), round(y1)]]
        capacity = len(group)
        zone: dict[str, Any] = {"name": f"{prefix}{k + 1}", "polygon": polygon, "capacity": capacity}
        zone["low_stock"] = min(max(1, capacity // 4), capacity - 1) if capacity > 1 else 0
        zones.append(zone)
    return zones


def _row_span(b: np.ndarray, width: int, height: int) -> list[float]:
    """x0, y0, x1, y1 around one row's boxes with a margin of a tenth of their median height."""
    margin = 0.1 * float(np.median(b[:, 3] - b[:, 1]))
    x0, y0 = max(0.0, float(b[:, 0].min()) - margin), max(0.0, float(b[:, 1].min()) - margin)
    return [x0, y0, min(float(width), float(b[:, 2].max()) + margin), min(float(height), float(b[:, 3].max()) + margin)]


def warn_overlaps(zones: list[ZoneConfig], width: int, height: int) -> None:
    """Tell the user which zones overlap: a product in both counts once, in the smaller zone."""
    from edge_agent.tasks.shelf.logic import Zone, overlapping_zones

    shaped = [Zone(z, np.asarray(z.polygon, np.float32)) for z in zones]
    for a, b, share in overlapping_zones(shaped, width, height):
        print(
            f"# warning: zones {a} and {b} overlap ({100 * share:.0f}% of the smaller); a product in both "
            "counts once, in the smaller zone: move the shared edge if that is not what you want",
            file=sys.stderr,
        )


def detect(image: np.ndarray, model_dir: Path, variant: str | None) -> np.ndarray:
    from edge_agent.config import OnnxRuntimeConfig
    from edge_agent.runtime.registry import load_model
    from edge_agent.tasks.detection import DecodeSpec, get_decoder
    from edge_agent.tasks.preprocess import ImagePreprocessor
    from edge_agent.tasks.shelf.task import to_frame

    model = load_model(model_dir, variant, OnnxRuntimeConfig())
    buffer, box = ImagePreprocessor(model.manifest.inputs[0], letterbox=True)(image)
    spec = DecodeSpec.from_manifest(model.manifest)
    raw = get_decoder(model.manifest.decoder)(model.runtime.run([buffer]), spec)[0]
    return to_frame(raw, box, image.shape[1], image.shape[0]).boxes


def load_zones(path: Path) -> list[ZoneConfig]:
    """Zones from a YAML file holding a zones block, a shelf task block or a whole agent config."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    found = _find_zones(doc)
    if found is None:
        raise UsageError(f"{path}: no 'zones:' list found")
    try:
        return [ZoneConfig.model_validate(z) for z in found]
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UsageError(f"{path}: zones: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def _find_zones(doc: Any) -> list[Any] | None:
    if isinstance(doc, dict):
        if isinstance(doc.get("zones"), list):
            return list(doc["zones"])
        for value in doc.values():
            found = _find_zones(value)
            if found is not None:
                return found
    if isinstance(doc, list):
        for value in doc:
            found = _find_zones(value)
            if found is not None:
                return found
    return None


def write_render(image: np.ndarray, zones: list[ZoneConfig], boxes: np.ndarray, out: Path) -> None:
    polygons = [np.asarray(z.polygon, dtype=np.float32) for z in zones]
    picture = render(image, boxes, polygons, [z.name for z in zones])
    if not cv2.imwrite(str(out), picture):
        raise UsageError(f"{out}: cannot write the picture (check the folder and the .png/.jpg extension)")
    print(f"# rendered {len(zones)} zone(s) over the snapshot to {out}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-agent zones", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    grid = sub.add_parser("grid", help="rows x columns over a rectangle")
    grid.add_argument("--image", type=Path, required=True, help="snapshot of the camera view")
    grid.add_argument("--rect", help="x0,y0,x1,y1 in frame pixels (default: the whole frame)")
    grid.add_argument("--rows", type=int, default=1)
    grid.add_argument("--cols", type=int, default=1)
    grid.add_argument("--prefix", default="shelf", help="zone names are PREFIX<row>-<col>")
    grid.add_argument("--capacity", type=int, help="facings of a full zone")
    grid.add_argument("--low-stock", type=int, default=2)
    grid.add_argument("--render", type=Path, help="write the zones over the snapshot to this PNG")
    auto = sub.add_parser("auto", help="one zone per shelf row the detector finds (snapshot of a full shelf)")
    auto.add_argument("--image", type=Path, required=True)
    auto.add_argument("--model", type=Path, default=Path("models/shelf-detector"))
    auto.add_argument("--variant")
    auto.add_argument("--prefix", default="row")
    auto.add_argument("--render", type=Path)
    show = sub.add_parser("render", help="draw the zones of a YAML file over a snapshot")
    show.add_argument("--image", type=Path, required=True)
    show.add_argument("--zones", type=Path, required=True, help="YAML with a zones list (or a whole agent config)")
    show.add_argument("--out", type=Path, required=True)
    return parser


def _run(args: argparse.Namespace) -> None:
    image = read_image(args.image)
    height, width = image.shape[:2]
    boxes = np.zeros((0, 4), np.float32)
    if args.command == "render":
        zones = load_zones(args.zones)
        warn_overlaps(zones, width, height)
        write_render(image, zones, boxes, args.out)
        return
    if args.command == "grid":
        if args.rows < 1 or args.cols < 1:
            raise UsageError("--rows and --cols must be at least 1")
        raw = grid_zones(parse_rect(args.rect, width, height), args.rows, args.cols, args.prefix)
        for zone in raw:
            zone.update({"capacity": args.capacity} if args.capacity else {})
            zone["low_stock"] = args.low_stock
    else:
        boxes = detect(image, args.model, args.variant)
        raw = row_zones(boxes, width, height, args.prefix)
        if not raw:
            raise UsageError(f"{args.image}: the detector found no products; take the snapshot of a stocked shelf")
    try:
        zones = [ZoneConfig.model_validate(z) for z in raw]
    except ValidationError as exc:
        raise UsageError(f"invalid zone: {exc.errors()[0]['msg']}") from None
    warn_overlaps(zones, width, height)
    print(yaml.safe_dump({"frame_size": [width, height], "zones": raw}, sort_keys=False), end="")
    if args.render:
        write_render(image, zones, boxes, args.render)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _run(args)
    except (UsageError, EdgeAgentError) as exc:
        print(f"edge-agent zones: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
