"""What the rewrites that carry weights refuse or flag instead of guessing (no Caffe)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from protoedit import InputError, loads
from protoedit.errors import InvalidArgumentError
from protoedit.rewrites import fully_conv, input_channels, rename, used_weights
from protoedit.weights import Weights

from .helpers import FIXTURES
from .weights_nets import random_weights

NETS = FIXTURES / "weights_rewrites"
BLOCK = (NETS / "rename" / "block.in.prototxt").read_text()
RGB = (NETS / "input_channels" / "grey.in.prototxt").read_text()


@pytest.mark.parametrize(
    ("renames", "message"),
    [
        ({"conv2": "x"}, "no layer named 'conv2' (did you mean 'conv1'?)"),
        ({"conv1": "fc"}, "after renaming, 'fc' would name two layers"),
        ({"conv1": "conv1"}, "the new name must differ"),
    ],
)
def test_rename_refuses(renames: dict[str, str], message: str) -> None:
    doc = loads(BLOCK)
    with pytest.raises(InvalidArgumentError, match=re.escape(message)):
        rename(doc, renames)
    assert doc.dumps() == BLOCK


def test_rename_refuses_a_name_given_to_two_layers() -> None:
    doc = loads(BLOCK.replace('name: "fc"', 'name: "conv1"'))
    with pytest.raises(InvalidArgumentError, match="2 layers are named 'conv1'"):
        rename(doc, {"conv1": "x"})


def test_rename_swaps_names_and_keeps_a_blob_whose_new_name_is_taken() -> None:
    doc = loads(BLOCK)
    weights = random_weights(doc)
    report = rename(doc, {"conv1": "fc", "fc": "conv1"}, weights)
    layers = {layer.name: layer for layer in doc.message.layer}
    assert layers["fc"].type == "Convolution" and layers["conv1"].type == "InnerProduct"
    assert list(layers["fc"].top) == ["fc"]  # conv1's blob followed its layer
    assert report.weights["fc"] is not None and report.weights["fc"][0].shape == (4, 3, 3, 3)
    assert report.carried == {"fc": "conv1", "conv1": "fc"}


def test_rename_on_weights_keeps_the_file_layout() -> None:
    doc = loads(BLOCK)
    weights = Weights.from_arrays(random_weights(doc), types={"conv1": "Convolution"})
    report = rename(doc, {"conv1": "features"}, weights)
    assert list(report.weights) == ["features", "fc"]
    assert report.weights["features"].type == "Convolution"
    assert report.weights["features"].blobs[0] is weights["conv1"].blobs[0]
    assert list(weights) == ["conv1", "fc"]  # the input weights keep their names


def test_rename_flags_a_layer_the_weights_lack() -> None:
    doc = loads(BLOCK)
    weights = random_weights(doc)
    del weights["fc"]
    report = rename(doc, {"fc": "classifier"}, weights)
    assert report.flagged == ["the weights hold nothing for layer 'fc', which has parameters"]


def test_fully_conv_refuses_a_net_without_spatial_inner_products() -> None:
    doc = loads(RGB)
    with pytest.raises(InputError, match="no InnerProduct layer reads a spatial map"):
        fully_conv(doc)


def test_fully_conv_flags_a_layer_whose_meaning_may_change() -> None:
    net = (NETS / "fully_conv" / "lenet_like.in.prototxt").read_text()
    net = net.replace('type: "Softmax"', 'type: "Flatten"')
    report = fully_conv(loads(net))
    assert report.flagged == [
        "layer 'prob' (Flatten) reads a value that is now a map of outputs: check that it "
        "still means what it did"
    ]


@pytest.mark.parametrize(
    ("net", "channels", "swap", "message"),
    [
        (RGB, 2, False, "2 channels for an input of 3"),
        (
            RGB.replace("num_output: 4 kernel_size: 3", "num_output: 3 kernel_size: 3 group: 3"),
            1,
            False,
            "grouped convolution",
        ),
        (RGB.replace("dim: 2 dim: 3", "dim: 2 dim: 1"), 1, True, "nothing to swap"),
    ],
)
def test_input_channels_refuses(net: str, channels: int, swap: bool, message: str) -> None:
    with pytest.raises(InputError, match=message):
        input_channels(loads(net), channels, swap=swap)


def test_input_channels_refuses_an_input_read_by_more_than_the_convolution() -> None:
    net = RGB.replace('bottom: "conv1"\n  top: "conv2"', 'bottom: "data"\n  top: "conv2"')
    with pytest.raises(InputError, match="input 'data' is also read by 'conv2'"):
        input_channels(loads(net), 1)


def test_input_channels_grey_weights_sum_the_channels() -> None:
    doc = loads(RGB)
    weights = random_weights(doc)
    report = input_channels(doc, 1, weights, swap=True)
    summed = weights["conv1"][0].astype(np.float64).sum(axis=1, keepdims=True)
    assert np.allclose(report.weights["conv1"][0], summed, rtol=2**-23, atol=0)
    assert report.original_inputs is not None
    grey = np.arange(2 * 49, dtype=np.float32).reshape(2, 1, 7, 7)
    rgb = report.original_inputs({"data": grey})["data"]
    assert rgb.shape == (2, 3, 7, 7) and all(
        np.array_equal(rgb[:, c], grey[:, 0]) for c in range(3)
    )


def test_used_weights_flags_a_layer_left_without_weights() -> None:
    doc = loads(BLOCK)
    weights = random_weights(doc)
    weights["gone"] = [np.zeros(3, np.float32)]
    del weights["fc"]
    report = used_weights(doc, weights)
    assert list(report.weights) == ["conv1"]
    assert report.changed == [
        "weights: kept the blobs of 1 layers, left out 1 that the net no longer has ('gone')"
    ]
    assert report.flagged == [
        "weights: layer 'fc' (InnerProduct) has parameters but the weights hold none (Caffe "
        "would leave them random)"
    ]
