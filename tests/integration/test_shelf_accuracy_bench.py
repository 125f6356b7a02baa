"""The shelf accuracy benchmark's product-free set on the shipped model: real photos and composed frames apart."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from bench.shelf_accuracy import evaluate, held_out
from edge_agent.tasks.shelf.compose_walls import texture_bank

MODEL = Path(__file__).resolve().parents[2] / "models" / "shelf-detector"


def test_empty_set_reports_boxes_on_photos_and_on_composed_frames_apart(tmp_path: Path) -> None:
    folder = tmp_path / "textures"
    folder.mkdir()
    for i, picture in enumerate(texture_bank(0, count=30, longest=160)):
        cv2.imwrite(str(folder / f"surface-{i:02d}.png"), picture)  # a held-out fifth of them by name hash
    frames = held_out(None, 6, "empty", [folder])
    photos = sum(f.photo for f in frames)
    assert 0 < photos <= 3 and all(len(f.shelf.boxes) == 0 for f in frames)
    result = evaluate(MODEL, "onnx-fp32", frames)
    total = result["boxes_per_photo"] * photos + result["boxes_per_composed"] * (len(frames) - photos)
    assert np.isclose(total / len(frames), result["boxes_per_frame"], atol=1e-3)
