"""`edge-agent fit defect` on bad input: one clear error line (exit 2) or a warning, never a traceback."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.tasks.defect.fit import main
from edge_agent.tasks.defect.images import MIN_GOOD_IMAGES, default_input_size, load_folder


def write_images(folder: Path, count: int, size: tuple[int, int] = (64, 48), start: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    for i in range(start, start + count):
        cv2.imwrite(str(folder / f"img_{i:03d}.png"), rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def run_fit(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_empty_folder_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "good").mkdir()
    code, err = run_fit(["--good", str(tmp_path / "good"), "--out", str(tmp_path / "m")], capsys)
    assert code == 2
    assert err.strip().startswith("error:") and "holds no images" in err and len(err.strip().splitlines()) == 1


def test_missing_folder_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_fit(["--good", str(tmp_path / "nope"), "--out", str(tmp_path / "m")], capsys)
    assert code == 2 and "does not exist" in err


def test_only_non_image_files_is_an_error_that_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good"
    good.mkdir()
    (good / "notes.txt").write_text("hello")
    (good / "data.csv").write_text("a,b")
    code, err = run_fit(["--good", str(good), "--out", str(tmp_path / "m")], capsys)
    assert code == 2
    assert "skipped 2 file(s) that are not images" in err and "holds no images" in err


def test_too_few_images_is_an_error_naming_the_minimum(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_images(tmp_path / "good", 3)
    code, err = run_fit(["--good", str(tmp_path / "good"), "--out", str(tmp_path / "m")], capsys)
    assert code == 2 and f"at least {MIN_GOOD_IMAGES}" in err and "3 usable image(s)" in err


def test_corrupt_and_mixed_size_images_are_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good"
    write_images(good, 2, (64, 48))
    write_images(good, 2, (128, 40), start=2)
    (good / "broken.jpg").write_bytes(b"not a jpeg")
    # still too few, so the command stops before training, after reporting what it found
    code, err = run_fit(["--good", str(good), "--out", str(tmp_path / "m")], capsys)
    assert code == 2
    assert "warning: good: skipped 1 file(s) that could not be decoded" in err
    assert "2 different sizes" in err and "aspect ratios" in err


def test_mixed_sizes_are_resized_to_one_input(tmp_path: Path) -> None:
    write_images(tmp_path / "good", 3, (64, 48))
    write_images(tmp_path / "good", 3, (80, 60), start=3)
    images, warnings, size, channels = load_folder(tmp_path / "good", "good", None, 3, None)
    assert images.images.shape == (6, size[1], size[0], 3) and channels == 3
    assert any("all are resized" in w for w in warnings)


def test_existing_output_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_images(tmp_path / "good", MIN_GOOD_IMAGES)
    out = tmp_path / "m"
    out.mkdir()
    (out / "manifest.yaml").write_text("x")
    code, err = run_fit(["--good", str(tmp_path / "good"), "--out", str(out)], capsys)
    assert code == 2 and "--force" in err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--size", "big", "WIDTHxHEIGHT"),
        ("--size", "100x100", "multiples of 8"),
        ("--size", "104x96", "multiples of 16"),
        ("--roi", "1,2,3", "x,y,width"),
    ],
)
def test_bad_options_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str
) -> None:
    write_images(tmp_path / "good", MIN_GOOD_IMAGES)
    code, err = run_fit(["--good", str(tmp_path / "good"), "--out", str(tmp_path / "m"), flag, value], capsys)
    assert code == 2 and message in err


def test_roi_outside_the_images_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_images(tmp_path / "good", MIN_GOOD_IMAGES)
    code, err = run_fit(
        ["--good", str(tmp_path / "good"), "--out", str(tmp_path / "m"), "--roi", "0,0,500,500"], capsys
    )
    assert code == 2 and "outside" in err


def test_usage_error_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "--good" in capsys.readouterr().err


def test_default_input_size_keeps_aspect_and_multiples() -> None:
    w, h = default_input_size(500, 1260)
    assert w % 32 == 0 and h % 32 == 0 and 2.0 < h / w < 3.0
    assert default_input_size(640, 640) == (160, 160)


def test_missing_train_extra_is_reported_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    write_images(tmp_path / "good", MIN_GOOD_IMAGES)
    args = ["--good", str(tmp_path / "good"), "--out", str(tmp_path / "m"), "--recipe", "autoencoder"]
    code, err = run_fit(args, capsys)
    assert code == 2 and "needs torch" in err and "edge-agent[train]" in err
    assert not (tmp_path / "m").exists()


def test_missing_fit_extra_is_reported_before_any_feature_is_extracted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tflite2onnx" else real(name, *a))
    write_images(tmp_path / "good", MIN_GOOD_IMAGES)
    code, err = run_fit(["--good", str(tmp_path / "good"), "--out", str(tmp_path / "m")], capsys)
    assert code == 2 and "needs tflite2onnx" in err and "edge-agent[fit]" in err
    assert not (tmp_path / "m").exists()


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


def test_a_folder_of_masks_only_is_an_error_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good"
    good.mkdir()
    for i in range(MIN_GOOD_IMAGES):
        mask = np.zeros((48, 64), np.uint8)
        mask[10:20, 10:30] = 255
        cv2.imwrite(str(good / f"part{i}.png"), mask)  # black-and-white masks saved under photo names
    code, err = run_fit(["--good", str(good), "--out", str(tmp_path / "m")], capsys)
    line = one_error_line(err)
    assert code == 2 and str(good) in line and "masks or labels" in line and "put photos" in line


def test_unreadable_files_only_is_an_error_naming_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good"
    good.mkdir()
    for i in range(MIN_GOOD_IMAGES):
        (good / f"part{i}.jpg").write_bytes(b"not a jpeg at all")
    code, err = run_fit(["--good", str(good), "--out", str(tmp_path / "m")], capsys)
    line = one_error_line(err)
    assert code == 2 and str(good) in line and "could be decoded" in line


def test_masks_and_labels_are_skipped_with_one_warning_that_counts_them(tmp_path: Path) -> None:
    from edge_agent.tasks.defect.partsdata import read_folder

    good = tmp_path / "good"
    write_images(good, MIN_GOOD_IMAGES)
    cv2.imwrite(str(good / "img_000_mask.png"), np.zeros((48, 64), np.uint8))
    cv2.imwrite(str(good / "Part3_label.bmp"), np.full((48, 64), 255, np.uint8))
    cv2.imwrite(str(good / "black.png"), np.zeros((48, 64, 3), np.uint8))  # an all-black frame
    (good / "masks").mkdir()
    for i in range(2):
        cv2.imwrite(str(good / "masks" / f"{i}.png"), np.zeros((48, 64), np.uint8))
    frames, names, notes = read_folder(good, "good", None)
    assert len(frames) == MIN_GOOD_IMAGES and "black.png" not in names
    mask_notes = [n for n in notes if "mask" in n]
    assert len(mask_notes) == 1 and "skipped 5 mask or label file(s)" in mask_notes[0]


def test_grey_files_are_read_as_one_channel(tmp_path: Path) -> None:
    from edge_agent.tasks.defect.partsdata import choose_geometry, read_folder

    good = tmp_path / "good"
    good.mkdir()
    rng = np.random.default_rng(0)
    for i in range(MIN_GOOD_IMAGES):
        cv2.imwrite(str(good / f"g{i}.png"), rng.integers(0, 255, (48, 64), dtype=np.uint8))
    frames, _names, _notes = read_folder(good, "good", None)
    assert all(f.ndim == 2 for f in frames)
    geometry = choose_geometry(frames, None, None, "none")
    assert geometry.channels == 1 and geometry.spec().shape == [1, 64, 64, 1] and geometry.spec().color == "GRAY"


def test_a_second_fit_into_the_same_folder_is_refused_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import fcntl

    write_images(tmp_path / "good", MIN_GOOD_IMAGES)
    out = tmp_path / "m"
    with (tmp_path / ".m.fit.lock").open("a+") as held:  # what a running fit holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, err = run_fit(["--good", str(tmp_path / "good"), "--out", str(out), "--force"], capsys)
    line = one_error_line(err)
    assert code == 2 and "another fit into this folder is running" in line and not out.exists()


def test_input_size_follows_the_images_within_the_pixel_budget() -> None:
    from edge_agent.tasks.defect.geometry import input_size

    assert input_size(640, 640) == (256, 256)  # 2.5x per side, not 4x
    assert input_size(300, 300) == (256, 256)
    assert input_size(200, 120) == (208, 128)  # small images keep their size (rounded to 16)
    w, h = input_size(500, 1260)
    assert 2.3 < h / w < 2.7 and w * h <= 256 * 256 * 1.05


def test_orientation_auto_turns_parts_that_lie_the_other_way() -> None:
    from edge_agent.tasks.defect.geometry import Geometry

    g = Geometry((64, 32), 1, orientation="auto", landscape=True)
    portrait = np.zeros((40, 20), np.uint8)
    portrait[0, 0] = 255
    turned = g.orient(portrait)
    assert turned.shape == (20, 40) and turned[0, -1] == 255  # a quarter turn clockwise
    assert Geometry((64, 32), 1).orient(portrait) is portrait
