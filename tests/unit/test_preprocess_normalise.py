"""The preprocessor's buffer holds (pixel * scale - mean) / std in the model's channel order and layout."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.runtime.manifest import InputSpec
from edge_agent.tasks.preprocess import ImagePreprocessor

SPECS = [
    pytest.param("NHWC", "BGR", 1.0, [], [], "float32", id="raw-pixels-bgr"),
    pytest.param("NHWC", "RGB", 1 / 255, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], "float32", id="imagenet-rgb"),
    pytest.param("NHWC", "RGB", 1 / 128, [1.0] * 3, [1.0] * 3, "float32", id="minus-one-to-one"),
    pytest.param("NCHW", "RGB", 1 / 255, [], [], "float32", id="nchw-unit"),
    pytest.param("NCHW", "RGB", 1 / 255, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], "float32", id="nchw-imagenet"),
    pytest.param("NCHW", "BGR", 1.0, [127.5] * 3, [127.5] * 3, "float16", id="nchw-half"),
    pytest.param("NCHW", "GRAY", 1 / 255, [], [], "float32", id="nchw-grey"),
    pytest.param("NCHW", "RGB", 1.0, [], [], "uint8", id="nchw-uint8"),
    pytest.param("NHWC", "GRAY", 1 / 128, [1.0], [1.0], "float32", id="grey"),
    pytest.param("NHWC", "RGB", 1.0, [], [], "uint8", id="uint8-rgb"),
]


def expected(
    frame: np.ndarray, layout: str, color: str, scale: float, mean: list[float], std: list[float]
) -> np.ndarray:
    if color == "GRAY":
        grey = 0.299 * frame[..., 2] + 0.587 * frame[..., 1] + 0.114 * frame[..., 0]
        image = np.rint(grey)[..., None]
    else:
        image = frame[..., ::-1] if color == "RGB" else frame
    n = image.shape[2]
    out = (image.astype(np.float64) * scale - np.asarray(mean or [0.0] * n)) / np.asarray(std or [1.0] * n)
    return out.transpose(2, 0, 1)[None] if layout == "NCHW" else out[None]


@pytest.mark.parametrize(("layout", "color", "scale", "mean", "std", "dtype"), SPECS)
def test_the_buffer_holds_the_normalised_frame(
    layout: str, color: str, scale: float, mean: list[float], std: list[float], dtype: str
) -> None:
    channels = 1 if color == "GRAY" else 3
    shape = [1, channels, 24, 32] if layout == "NCHW" else [1, 24, 32, channels]
    spec = InputSpec(name="x", shape=shape, layout=layout, color=color, scale=scale, mean=mean, std=std, dtype=dtype)
    frame = np.random.default_rng(5).integers(0, 256, (24, 32, 3), dtype=np.uint8)  # the model's size: no resize
    buffer, _ = ImagePreprocessor(spec)(frame)
    assert buffer.dtype == np.dtype(dtype) and list(buffer.shape) == shape
    # float32 rounding, or one grey level where OpenCV's fixed-point grey conversion rounds the other way
    tolerance = scale / min(std or [1.0]) if color == "GRAY" else (1e-3 if dtype == "float16" else 1e-5)
    assert np.abs(buffer.astype(np.float64) - expected(frame, layout, color, scale, mean, std)).max() <= tolerance


def test_the_letterbox_pads_everything_outside_the_frame_whatever_came_before() -> None:
    spec = InputSpec(name="x", shape=[1, 64, 64, 3], layout="NHWC", color="BGR")
    pre = ImagePreprocessor(spec, letterbox=True)
    pre(np.full((32, 64, 3), 200, np.uint8))  # wide: pads above and below
    buffer, box = pre(np.full((64, 16, 3), 50, np.uint8))  # tall: pads left and right, over the old frame
    image = buffer[0]
    assert box.pad_x == 24 and box.pad_y == 0
    assert (image[:, :24] == 114).all() and (image[:, 40:] == 114).all() and (image[:, 24:40] == 50).all()


@pytest.mark.parametrize(("layout", "color", "scale", "mean", "std", "dtype"), SPECS)
def test_frames_in_a_row_give_what_a_fresh_preprocessor_gives(
    layout: str, color: str, scale: float, mean: list[float], std: list[float], dtype: str
) -> None:
    """Frames of one size normalise only their own rows (the bars are kept from the frame before): every frame of
    a run that changes size and comes back must still match a preprocessor that has seen nothing else."""
    channels = 1 if color == "GRAY" else 3
    shape = [1, channels, 48, 48] if layout == "NCHW" else [1, 48, 48, channels]
    spec = InputSpec(name="x", shape=shape, layout=layout, color=color, scale=scale, mean=mean, std=std, dtype=dtype)
    rng = np.random.default_rng(7)
    running = ImagePreprocessor(spec, letterbox=True)
    for height, width in ((72, 128), (72, 128), (128, 72), (72, 128), (96, 96), (72, 128)):
        frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        buffer, box = running(frame)
        fresh, fresh_box = ImagePreprocessor(spec, letterbox=True)(frame)
        assert box == fresh_box
        np.testing.assert_array_equal(buffer, fresh)


@pytest.mark.parametrize(
    ("height", "width", "model_shape", "pad"),
    [
        pytest.param(720, 1280, (256, 416), (0, 11), id="16:9-landscape"),
        pytest.param(640, 480, (416, 416), (52, 0), id="3:4-portrait-keeps-its-side-bars"),
        pytest.param(416, 416, (416, 416), (0, 0), id="square"),
    ],
)
def test_row_multiple_cuts_the_bars_above_and_below_to_the_stride(
    height: int, width: int, model_shape: tuple[int, int], pad: tuple[int, int]
) -> None:
    """A file that takes any height gets the frame at the scale the manifest's size gives, with only as many rows of
    bars as reach the next multiple: the same pixels as the square letterbox, fewer bars."""
    spec = InputSpec(name="x", shape=[1, 416, 416, 3], layout="NHWC", color="BGR")
    frame = np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer, box = ImagePreprocessor(spec, letterbox=True, row_multiple=32)(frame)
    square, square_box = ImagePreprocessor(spec, letterbox=True)(frame)
    assert buffer.shape[1:3] == model_shape and (box.pad_x, box.pad_y) == pad
    assert box.scale_x == square_box.scale_x and box.scale_y == square_box.scale_y
    dy, dx = int(square_box.pad_y - box.pad_y), int(square_box.pad_x - box.pad_x)
    np.testing.assert_array_equal(buffer[0], square[0, dy : dy + model_shape[0], dx : dx + model_shape[1]])
    corners = np.array([[0, 0, width, height]], np.float32) * box.scale_x + [box.pad_x, box.pad_y] * 2
    np.testing.assert_allclose(box.to_frame(corners), [[0, 0, width, height]], atol=1e-3)


def test_row_multiple_follows_a_camera_that_changes_resolution() -> None:
    spec = InputSpec(name="x", shape=[1, 3, 64, 64], layout="NCHW", color="RGB", scale=1 / 255)
    running = ImagePreprocessor(spec, letterbox=True, row_multiple=16)
    rng = np.random.default_rng(9)
    for height, width in ((36, 64), (36, 64), (64, 48), (36, 64)):
        frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        buffer, box = running(frame)
        fresh, fresh_box = ImagePreprocessor(spec, letterbox=True, row_multiple=16)(frame)
        assert box == fresh_box and buffer.shape == fresh.shape
        np.testing.assert_array_equal(buffer, fresh)
    assert running.buffer.shape == (1, 3, 48, 64)


def test_row_multiple_needs_the_letterbox() -> None:
    spec = InputSpec(name="x", shape=[1, 64, 64, 3], layout="NHWC", color="BGR")
    with pytest.raises(ValueError, match="letterbox"):
        ImagePreprocessor(spec, row_multiple=32)
