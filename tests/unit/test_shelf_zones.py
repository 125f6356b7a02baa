"""`edge-agent zones` (grid, render, user mistakes) and the shelf composer."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edge_agent.tasks.shelf.compose import ProductLibrary, ShelfComposer, letterbox
from edge_agent.tasks.shelf.config import ShelfTaskConfig
from edge_agent.tasks.shelf.zones import main, row_zones


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    path = tmp_path / "snap.png"
    cv2.imwrite(str(path), np.full((480, 640, 3), 90, np.uint8))
    return path


def test_grid_prints_zones_the_task_config_accepts(snapshot: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "grid",
            "--image",
            str(snapshot),
            "--rect",
            "40,20,600,440",
            "--rows",
            "3",
            "--cols",
            "2",
            "--capacity",
            "8",
            "--low-stock",
            "2",
        ]
    )
    assert code == 0
    block = yaml.safe_load(capsys.readouterr().out)
    assert block["frame_size"] == [640, 480]
    cfg = ShelfTaskConfig.model_validate({"kind": "shelf", **block})
    assert [z.name for z in cfg.zones] == ["shelf1-1", "shelf1-2", "shelf2-1", "shelf2-2", "shelf3-1", "shelf3-2"]
    assert cfg.zones[3].polygon == [(320, 160), (600, 160), (600, 300), (320, 300)]
    assert cfg.zones[0].capacity == 8


def test_render_draws_the_zones_of_a_config(snapshot: Path, tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    zones = [{"name": "a", "polygon": [[10, 10], [200, 10], [200, 200], [10, 200]]}]
    config.write_text(yaml.safe_dump({"pipelines": [{"name": "p", "task": {"kind": "shelf", "zones": zones}}]}))
    out = tmp_path / "zones.png"
    assert main(["render", "--image", str(snapshot), "--zones", str(config), "--out", str(out)]) == 0
    picture = cv2.imread(str(out))
    assert picture.shape == (480, 640, 3)
    assert (picture[10:200, 10] != 90).any(), "the zone outline is drawn"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["grid", "--image", "missing.png"], "not a readable image"),
        (["grid", "--image", "{snap}", "--rect", "0,0,900,100"], "inside the 640x480 frame"),
        (["grid", "--image", "{snap}", "--rect", "a,b"], "x0,y0,x1,y1"),
        (["render", "--image", "{snap}", "--zones", "nope.yaml", "--out", "x.png"], "no such file"),
    ],
)
def test_user_mistakes_print_one_line_and_exit_2(
    argv: list[str], message: str, snapshot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([a.replace("{snap}", str(snapshot)) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_row_zones_group_boxes_into_shelf_rows() -> None:
    boxes = np.array(
        [[10 + 30 * i, 20, 35 + 30 * i, 90] for i in range(5)]
        + [[10 + 30 * i, 130, 35 + 30 * i, 200] for i in range(3)],
        np.float32,
    )
    zones = row_zones(boxes, 640, 480, "row")
    assert [(z["name"], z["capacity"]) for z in zones] == [("row1", 5), ("row2", 3)]


def test_row_zones_never_overlap_and_render_warns_about_overlaps(
    snapshot: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    boxes = np.array(  # two rows whose margins would overlap
        [[10 + 30 * i, 20, 35 + 30 * i, 100] for i in range(5)]
        + [[10 + 30 * i, 104, 35 + 30 * i, 190] for i in range(3)],
        np.float32,
    )
    first, second = row_zones(boxes, 640, 480, "row")
    assert first["polygon"][2][1] <= second["polygon"][0][1]
    block = {"zones": [first, {**second, "name": "over", "polygon": first["polygon"]}]}
    config = tmp_path / "zones.yaml"
    config.write_text(yaml.safe_dump(block))
    assert main(["render", "--image", str(snapshot), "--zones", str(config), "--out", str(tmp_path / "z.png")]) == 0
    assert "zones row1 and over overlap (100% of the smaller)" in capsys.readouterr().err


def test_composer_is_reproducible_and_boxes_lie_in_the_frame() -> None:
    composer = ShelfComposer(ProductLibrary.procedural(seed=1, count=10))
    a = composer.compose(np.random.default_rng(5))
    b = composer.compose(np.random.default_rng(5))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
    h, w = a.image.shape[:2]
    assert len(a.boxes) > 5
    assert (a.boxes[:, [0, 2]] >= 0).all() and (a.boxes[:, [0, 2]] <= w).all() and (a.boxes[:, 3] <= h).all()
    assert len(a.zones) == len(a.zone_rows) and a.box_zone.max() < len(a.zones)
    empty = composer.compose(np.random.default_rng(5), products=False)
    assert len(empty.boxes) == 0
    image, moved = letterbox(a.image, a.boxes, 320)
    assert image.shape == (320, 320, 3) and moved[:, 2].max() <= 320
