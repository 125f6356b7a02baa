"""Composes the shelf demo: 30 frames of one shelf where a slot empties and is restocked, plus its zones.

    python models/build/shelf/make_demo.py --data /work/shared/data/grocery-store --out examples/data/shelf_demo

Story (frame numbers), for the fullest slot of the middle shelf: 0-5 full; 6-8 a shopper's arm passes
in front of it (the count must not flip); 9-11 one facing fewer; 12-17 two left (low stock); 18-23
empty (out of stock); 24-29 restocked. The fullest slot of the top shelf quietly loses one facing at
frame 15 (no event: it stays above low stock).
Products come from the held-out photos (never seen by the shipped detector). Writes frame_NNN.jpg,
zones.yaml (a shelf task block) and truth.json (true facings per zone per frame).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from edge_agent.tasks.shelf.compose import Layout, ProductLibrary, Scene, ShelfComposer  # noqa: E402
from edge_agent.tasks.shelf.logic import points_in_polygon  # noqa: E402

FRAMES = 30
LAYOUT = Layout(
    width=(640, 640),
    aspect=(0.75, 0.75),
    rows=(3, 3),
    fill=(0.75, 0.85),
    facings=(4, 6),
    empty_slot_p=0.0,
    missing_facing_p=0.0,
    occluder_p=0.0,
    perspective=0.025,
    distractor_p=0.0,
)


def zone_names(scene: Scene) -> list[str]:
    names, seen = [], {}
    for row in scene.zone_rows:
        seen[row] = seen.get(row, 0) + 1
        names.append(f"r{row + 1}-s{seen[row]}")
    return names


def facings_in(scene: Scene, zone: int) -> list[int]:
    return [i for i, p in enumerate(scene.placements) if p.zone == zone]


def fullest(scene: Scene, row: int) -> int:
    """The slot of this shelf row with the most facings."""
    zones = [z for z, r in enumerate(scene.zone_rows) if r == row]
    return max(zones, key=lambda z: len(facings_in(scene, z)))


def story(frame: int, full: int) -> int:
    """Facings left in the target slot at this frame."""
    if frame < 9 or frame >= 24:
        return full
    if frame < 12:
        return full - 1
    return 2 if frame < 18 else 0


def draw_arm(image: np.ndarray, zone: np.ndarray, frame: int) -> None:
    """An arm reaching from the bottom edge to the target slot, a little further each frame."""
    h = image.shape[0]
    centre = zone.mean(axis=0)
    reach = 0.6 + 0.2 * (frame - 6)
    tip = (int(centre[0] + 20), int(h - (h - centre[1]) * reach))
    cv2.line(image, (int(centre[0] + 120), h + 20), tip, (95, 140, 200), 70, cv2.LINE_AA)
    cv2.circle(image, tip, 45, (90, 130, 190), -1, cv2.LINE_AA)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "examples" / "data" / "shelf_demo")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    composer = ShelfComposer(ProductLibrary.from_grocery_store(args.data, split="heldout"), LAYOUT)
    scene = composer.plan(np.random.default_rng(args.seed))
    names = zone_names(scene)
    target_zone = fullest(scene, 1)
    target, quiet = facings_in(scene, target_zone), facings_in(scene, fullest(scene, 0))
    args.out.mkdir(parents=True, exist_ok=True)
    truth: dict[str, list[int]] = {name: [] for name in names}
    zones: list[np.ndarray] = []
    for frame in range(FRAMES):
        present = np.ones(len(scene.placements), bool)
        present[target[story(frame, len(target)) :]] = False
        if frame >= 15:
            present[quiet[-1]] = False
        # The same camera (perspective, light, blur) every frame: only the stock changes.
        shelf = composer.render(scene, np.random.default_rng(args.seed + 1), present=present)
        zones = shelf.zones
        image = shelf.image
        if 6 <= frame <= 8:
            draw_arm(image, zones[target_zone], frame)
        centres = (shelf.boxes[:, :2] + shelf.boxes[:, 2:]) / 2
        for name, polygon in zip(names, zones):
            truth[name].append(int(points_in_polygon(centres, polygon).sum()))
        cv2.imwrite(str(args.out / f"frame_{frame:03d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    block = {
        "frame_size": [int(image.shape[1]), int(image.shape[0])],
        "zones": [
            {
                "name": name,
                "polygon": [[round(float(x)), round(float(y))] for x, y in polygon],
                "capacity": truth[name][0],
                "low_stock": min(2, truth[name][0] - 1),
            }
            for name, polygon in zip(names, zones)
        ],
    }
    (args.out / "zones.yaml").write_text(yaml.safe_dump(block, sort_keys=False))
    (args.out / "truth.json").write_text(json.dumps(truth, indent=1))
    print(f"wrote {FRAMES} frames, {len(names)} zones to {args.out}; {names[target_zone]} empties and is restocked")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
