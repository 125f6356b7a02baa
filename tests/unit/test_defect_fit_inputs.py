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
    [("--size", "big", "WIDTHxHEIGHT"), ("--size", "100x100", "multiples of 8"), ("--roi", "1,2,3", "x,y,width")],
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
    code, err = run_fit(["--good", str(tmp_path / "good"), "--out", str(tmp_path / "m")], capsys)
    assert code == 2 and "needs torch" in err and "edge-agent[train]" in err
    assert not (tmp_path / "m").exists()
