"""Patch features: the cut backbone files (int8 TFLite and fp32 ONNX) run in the daemon's runtimes and
agree with each other; grey parts go in as one channel; nearest-neighbour and coreset steps are exact."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_agent.errors import ModelError
from edge_agent.runtime import backbone
from edge_agent.tasks.defect.coreset import greedy_coreset
from edge_agent.tasks.defect.patches import PatchScorer, cell_stats, embed, nearest_distance, normalise
from edge_agent.tasks.defect.patchfit import nested_scores

pytest.importorskip("tflite2onnx", reason="cutting the backbone needs the fit extra")
TAPS = ["features_s8", "features_s16"]
H, W = 96, 64


def _image(channels: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    grey = (rng.random((H, W)) * 60 + np.linspace(60, 190, W)[None, :]).astype(np.uint8)
    return np.repeat(grey[..., None], channels, axis=2)


def _onnx(tmp_path: Path, channels: int) -> list[np.ndarray]:
    import onnx
    import onnxruntime as ort

    path = tmp_path / f"cut{channels}.onnx"
    onnx.save(backbone.onnx_cut(TAPS, H, W, channels), str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs: list[np.ndarray] = session.run(None, {"image": (_image(channels) / 128.0 - 1.0).astype(np.float32)[None]})
    return outputs


def _tflite(tmp_path: Path, channels: int) -> list[np.ndarray]:
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    path = tmp_path / f"cut{channels}.tflite"
    path.write_bytes(backbone.tflite_cut(TAPS, H, W, channels))
    interp = litert.Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], _image(channels)[None])
    interp.invoke()
    out = []
    for d in interp.get_output_details():
        scale, zero = d["quantization"]
        out.append((interp.get_tensor(d["index"]).astype(np.float32) - zero) * scale)
    return out


def test_cut_files_give_stride_8_and_16_maps_that_agree(tmp_path: Path) -> None:
    fp32, int8 = _onnx(tmp_path, 3), _tflite(tmp_path, 3)
    assert [a.shape for a in fp32] == [(1, H // 8, W // 8, 32), (1, H // 16, W // 16, 96)]
    assert [a.shape for a in int8] == [a.shape for a in fp32]
    for a, b in zip(fp32, int8):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.98


def test_grey_input_is_one_channel_and_matches_the_colour_network(tmp_path: Path) -> None:
    colour, grey = _onnx(tmp_path, 3), _onnx(tmp_path, 1)
    for a, b in zip(colour, grey):
        assert np.abs(a - b).max() < 1e-3  # folding R, G, B weights is exact for a grey pixel
    tfl_colour, tfl_grey = _tflite(tmp_path, 3), _tflite(tmp_path, 1)
    for a, b in zip(tfl_colour, tfl_grey):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.97  # uint8 weights quantised once more


def test_a_changed_pretrained_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / backbone.MOBILENET_V2.folder
    folder.mkdir()
    shutil.copyfile(backbone.MOBILENET_V2.path(), folder / backbone.MOBILENET_V2.file)
    with (folder / backbone.MOBILENET_V2.file).open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02")
    with pytest.raises(ModelError, match="sha256"):
        backbone.load_pretrained(root=tmp_path)


def test_nearest_distance_equals_brute_force() -> None:
    rng = np.random.default_rng(0)
    patches, bank = rng.normal(size=(50, 16)).astype(np.float32), rng.normal(size=(30, 16)).astype(np.float32)
    brute = np.sqrt(((patches[:, None, :] - bank[None, :, :]) ** 2).sum(-1)).min(axis=1)
    assert np.allclose(nearest_distance(patches, bank), brute, atol=1e-4)


def test_coreset_keeps_every_cluster_of_normal_patches() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, size=(6, 64))
    sizes = [2000, 1000, 500, 100, 20, 5]  # rare but normal patches too
    points = np.concatenate([c + rng.normal(0, 0.1, size=(n, 64)) for c, n in zip(centres, sizes)]).astype(np.float32)
    owner = np.repeat(np.arange(6), sizes)
    chosen = greedy_coreset(points, 6, rng)
    assert sorted(owner[chosen]) == list(range(6))


def test_embed_puts_both_layers_on_the_stride_8_grid() -> None:
    maps = [np.ones((1, 6, 4, 32), np.float32), np.ones((1, 3, 2, 96), np.float32)]
    out = embed(maps, np.array([1.0, 2.0], np.float32))
    assert out.shape == (24, 128) and np.allclose(out[:, :32], 1.0) and np.allclose(out[:, 32:], 2.0)


def _good_maps(n: int = 200) -> np.ndarray:
    """Distance maps of good parts whose border cells always lie a little far from the bank, and vary more."""
    rng = np.random.default_rng(1)
    maps = rng.normal(1.0, 0.05, size=(n, 12, 8)).astype(np.float32)
    maps[:, 0, :] = rng.normal(1.6, 0.2, size=(n, 8))
    return maps


def test_a_defect_in_the_middle_outranks_a_border_that_is_always_far_from_the_bank() -> None:
    cells = cell_stats(_good_maps())
    good_border = np.full((12, 8), 1.0, np.float32)
    good_border[0, 3] = 1.9  # a good part at its usual border distance, a little high
    defect = np.full((12, 8), 1.0, np.float32)
    defect[6, 4] = 1.4  # a clear step in the middle, still below the raw border value
    assert good_border.max() > defect.max()  # raw distances rank them the wrong way round
    assert normalise(defect, cells).max() > 2 * normalise(good_border, cells).max()


def test_cell_statistics_of_few_images_are_pulled_toward_the_whole_map() -> None:
    maps = _good_maps(4)
    maps[:, 5, 5] = 1.0  # four identical values would give a spread of zero on their own
    cells = cell_stats(maps)
    assert cells[1, 5, 5] > 0.5 * float(maps.std()) and np.isfinite(normalise(maps, cells)).all()


def test_nested_scores_judge_each_fold_with_statistics_that_did_not_see_it() -> None:
    maps = _good_maps(100)
    folds = np.arange(100) % 5
    maps[folds == 0, 6, 4] = 3.0  # one fold shows a spot no other fold shows
    scores = nested_scores(maps, folds)
    in_sample = normalise(maps, cell_stats(maps)).reshape(100, -1).max(axis=1)
    assert scores[folds == 0].min() > 10 and in_sample[folds == 0].max() < scores[folds == 0].min()


def test_a_model_fitted_without_cell_statistics_keeps_its_raw_distances() -> None:
    rng = np.random.default_rng(2)
    maps = [rng.normal(size=(1, 4, 4, 8)).astype(np.float32), rng.normal(size=(1, 2, 2, 8)).astype(np.float32)]
    bank = rng.normal(size=(20, 16)).astype(np.float32)
    weights = np.ones(2, np.float32)
    raw = PatchScorer(bank, weights, map_scale=1.0).raw_map(maps)
    cells = np.stack([np.full((4, 4), 0.5), np.full((4, 4), 2.0)]).astype(np.float32)
    z = PatchScorer(bank, weights, map_scale=1.0, cells=cells).raw_map(maps)
    assert raw.shape == (4, 4) and np.allclose(z, (raw - 0.5) / 2.0)
