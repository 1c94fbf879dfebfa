"""Images to input blobs the Caffe way, mean files, parameter roles, weight-shape checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from protoedit.errors import InputError
from protoedit.explain.preprocess import (
    Preprocess,
    blob_to_image,
    image_to_blob,
    load_input,
    read_mean_file,
)
from protoedit.net.layers import param_roles
from protoedit.schema import builtin_schema
from protoedit.weights import WeightsError, load, stored_shapes
from protoedit.weights.fit import misfits


def _png(path: Path, rgb: np.ndarray) -> Path:
    Image.fromarray(rgb.astype(np.uint8)).save(path)
    return path


def _colour_image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(6, 7, 3))


def test_channels_become_bgr_unless_rgb(tmp_path: Path) -> None:
    rgb = _colour_image()
    path = _png(tmp_path / "c.png", rgb)
    bgr = load_input(path, (1, 3, 6, 7))
    kept = load_input(path, (1, 3, 6, 7), Preprocess(rgb=True))
    assert bgr.shape == kept.shape == (1, 3, 6, 7)
    np.testing.assert_array_equal(bgr[0], rgb.transpose(2, 0, 1)[::-1])
    np.testing.assert_array_equal(kept[0], rgb.transpose(2, 0, 1))


def test_mean_is_subtracted_before_the_scale(tmp_path: Path) -> None:
    rgb = _colour_image()
    path = _png(tmp_path / "c.png", rgb)
    pre = Preprocess(mean=(10.0, 20.0, 30.0), scale=0.5)
    data = load_input(path, (1, 3, 6, 7), pre)[0]
    expected = (rgb.transpose(2, 0, 1)[::-1] - np.array([10, 20, 30]).reshape(3, 1, 1)) * 0.5
    np.testing.assert_allclose(data, expected)
    np.testing.assert_array_equal(blob_to_image(data, pre), rgb)  # and back, exactly


def _mean_file(path: Path, mean: np.ndarray) -> Path:
    blob = builtin_schema().message_class("BlobProto")()
    blob.shape.dim.extend([1, *mean.shape])
    blob.data.extend(mean.reshape(-1).tolist())
    path.write_bytes(blob.SerializeToString())
    return path


def test_mean_file_of_the_same_size_is_subtracted_per_pixel(tmp_path: Path) -> None:
    rgb = _colour_image()
    mean = np.random.default_rng(1).uniform(0, 255, size=(3, 6, 7)).astype(np.float32)
    mean_path = _mean_file(tmp_path / "mean.binaryproto", mean)
    np.testing.assert_array_equal(read_mean_file(mean_path), mean)
    path = _png(tmp_path / "c.png", rgb)
    data = load_input(path, (1, 3, 6, 7), Preprocess(mean_file=str(mean_path)))[0]
    np.testing.assert_allclose(data, rgb.transpose(2, 0, 1)[::-1] - mean, rtol=1e-6)
    other = _mean_file(tmp_path / "big.binaryproto", np.ones((3, 9, 9), dtype=np.float32) * 5)
    data = load_input(path, (1, 3, 6, 7), Preprocess(mean_file=str(other)))[0]
    np.testing.assert_allclose(data, rgb.transpose(2, 0, 1)[::-1] - 5.0)


def test_crop_keeps_the_centre_and_resize_keeps_everything(tmp_path: Path) -> None:
    grey = np.zeros((10, 20), dtype=np.uint8)
    grey[:, :5] = 255  # a white band at the left edge only
    path = tmp_path / "band.png"
    Image.fromarray(grey).save(path)
    cropped = load_input(path, (1, 1, 10, 10), Preprocess(fit="crop"))
    resized = load_input(path, (1, 1, 10, 10))
    assert cropped.shape == resized.shape == (1, 1, 10, 10)
    assert cropped.max() == 0  # the centre ten columns are black
    assert resized[0, 0, :, 0].min() > 200 and resized[0, 0, :, -1].max() == 0


def test_npy_is_taken_as_it_is(tmp_path: Path) -> None:
    array = np.random.default_rng(2).standard_normal((2, 3, 4, 5)).astype(np.float32)
    np.save(tmp_path / "a.npy", array)
    np.testing.assert_array_equal(load_input(tmp_path / "a.npy", (1, 3, 4, 5)), array)


def test_undecodable_image_is_a_located_input_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    with pytest.raises(InputError, match="cannot decode image") as info:
        load_input(path, (1, 3, 8, 8))
    assert str(info.value).startswith(str(path))


def test_image_channels_must_match(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="3 mean values for an input of 1 channels"):
        image_to_blob(np.zeros((4, 4, 1), np.float32), (1, 4, 4), Preprocess(mean=(1, 2, 3)))


def test_param_roles_by_layer_type() -> None:
    assert param_roles("Convolution", 2) == ["weight", "bias"]
    assert param_roles("InnerProduct", 1) == ["weight"]  # bias_term: false
    assert param_roles("BatchNorm", 3) == ["mean", "variance", "scale_factor"]
    assert param_roles("Scale", 2) == ["scale", "bias"]
    assert param_roles("Scale", 1, bottoms=2) == ["bias"]
    assert param_roles("PReLU", 1) == ["slope"]
    assert param_roles("LSTM", 3) == ["blob0", "blob1", "blob2"]


def _model(path: Path, blobs: dict[str, list[list[int]]], legacy: bool = False) -> Path:
    net = builtin_schema().message_class("NetParameter")()
    for name, shapes in blobs.items():
        layer = net.layer.add(name=name)
        for shape in shapes:
            blob = layer.blobs.add()
            if legacy:
                blob.num, blob.channels, blob.height, blob.width = [1] * (4 - len(shape)) + shape
            else:
                blob.shape.dim.extend(shape)
            blob.data.extend([0.0] * int(np.prod(shape)))
    path.write_bytes(net.SerializeToString())
    return path


def test_misfits_name_the_layer_and_both_shapes(tmp_path: Path) -> None:
    stored = stored_shapes(_model(tmp_path / "m", {"conv1": [[8, 1, 5, 5], [8]]}))
    roles = {"conv1": ["weight", "bias"]}
    fits = misfits({"conv1": [(8, 1, 5, 5), (8,)]}, stored, roles)
    assert fits == []
    problems = misfits({"conv1": [(16, 1, 3, 3), (16,)]}, stored, roles)
    assert problems[0] == (
        "layer 'conv1' weight: the net expects 16 x 1 x 3 x 3, the weights file has 8 x 1 x 5 x 5"
    )
    assert len(problems) == 2
    assert (
        "2 parameter blobs in the net, 1"
        in misfits({"conv1": [(8, 1, 5, 5), (8,)]}, {"conv1": [((8, 1, 5, 5), False)]}, roles)[0]
    )
    assert misfits({"other": [(3,)]}, stored, {"other": ["bias"]}) == []  # absent: not a misfit


def test_legacy_blob_shapes_fit_as_caffe_pads_them(tmp_path: Path) -> None:
    path = _model(tmp_path / "old", {"ip": [[10, 64], [10]]}, legacy=True)
    stored = stored_shapes(path)
    assert stored["ip"] == [((1, 1, 10, 64), True), ((1, 1, 1, 10), True)]
    roles = {"ip": ["weight", "bias"]}
    assert misfits({"ip": [(10, 64), (10,)]}, stored, roles) == []
    assert misfits({"ip": [(64, 10), (10,)]}, stored, roles) != []


def test_weights_file_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="cannot read weights file"):
        load(tmp_path / "absent.caffemodel")
    (tmp_path / "junk").write_bytes(b"\xff\xff\xff\xff")
    with pytest.raises(WeightsError, match="not a Caffe weights file"):
        load(tmp_path / "junk")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(WeightsError, match="holds no layers"):
        load(tmp_path / "empty")
