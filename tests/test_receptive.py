"""Receptive fields worked out by hand (``test_summary_caffe.py`` proves them in Caffe).

Along one axis, after a window of kernel k, stride s, pad p, dilation d on a field
(size r, stride j, offset o): r' = r + d(k-1)j, j' = js, o' = o - pj.
"""

from __future__ import annotations

import pytest

from protoedit import InputError, load, loads
from protoedit.net.receptive import Box, ReceptiveField, receptive_field, receptive_fields

from .helpers import CORPUS

INPUT = (
    'layer { name: "data" type: "Input" top: "data" '
    "input_param { shape { dim: 1 dim: 3 dim: 32 dim: 32 } } }\n"
)


def _conv(name: str, bottom: str, param: str, kind: str = "Convolution") -> str:
    return (
        f'layer {{ name: "{name}" type: "{kind}" bottom: "{bottom}" top: "{name}" '
        f"convolution_param {{ num_output: 2 {param} }} }}\n"
    )


def _layer(name: str, kind: str, bottoms: list[str], param: str = "") -> str:
    text = f'layer {{ name: "{name}" type: "{kind}" '
    return text + "".join(f'bottom: "{b}" ' for b in bottoms) + f'top: "{name}" {param} }}\n'


def test_a_plain_stack_by_hand() -> None:
    net = loads(
        INPUT
        + _conv("c1", "data", "kernel_size: 3 pad: 1")  # r 3, j 1, o -1
        + _layer("p1", "Pooling", ["c1"], "pooling_param { pool: MAX kernel_size: 2 stride: 2 }")
        # r 3 + 1 = 4, j 2, o -1
        + _conv("c2", "p1", "kernel_size: 3 pad: 1")  # r 4 + 2*2 = 8, j 2, o -1 - 2 = -3
        + _layer("r2", "ReLU", ["c2"])
    )
    fields = receptive_fields(net)
    assert fields["data"] == ReceptiveField("data", (1, 1), (1, 1), (0, 0), Box((0, 0), (32, 32)))
    c2 = fields["c2"]
    assert (c2.size, c2.stride, c2.offset) == ((8, 8), (2, 2), (-3, -3))
    assert fields["r2"].size == (8, 8)
    assert c2.box(0, 0) == Box((0, 0), (5, 5))  # -3..4, clipped to the image
    assert c2.box(0, 0, clip=False) == Box((-3, -3), (5, 5))
    assert c2.box(3, 15) == Box((3, 27), (11, 32))  # x: -3 + 30 = 27 .. 35, clipped at 32
    assert c2.box(3, 15).slices == (slice(3, 11), slice(27, 32))
    assert c2.center(0, 0) == (0.5, 0.5)


def test_dilation_and_per_axis_windows() -> None:
    net = loads(
        INPUT
        + _conv("c1", "data", "kernel_size: 3 dilation: 2 pad: 2")  # r 1 + 2*2 = 5, o -2
        + _conv("c2", "c1", "kernel_h: 3 kernel_w: 1 stride_h: 2 stride_w: 1")  # r 7 / 5
    )
    c2 = receptive_field(net, "c2")
    assert (c2.size, c2.stride, c2.offset) == ((7, 5), (2, 1), (-2, -2))


def test_deconvolution_of_stride_one_and_crop() -> None:
    # Deconvolution (stride 1): output o reads inputs o + p - d(k-1) .. o + p.
    net = loads(
        INPUT
        + _conv("c1", "data", "kernel_size: 3")  # r 3, o 0
        + _conv("up", "c1", "kernel_size: 3 pad: 1", kind="Deconvolution")  # r 5, o 0 + (1-2) = -1
        + _conv("ref", "data", "kernel_size: 5")  # 28 x 28
        + _layer("crop", "Crop", ["up", "ref"], "crop_param { axis: 2 offset: 2 offset: 1 }")
    )
    up, crop = receptive_field(net, "up"), receptive_field(net, "crop")
    assert (up.size, up.stride, up.offset) == ((5, 5), (1, 1), (-1, -1))
    assert (crop.size, crop.offset) == ((5, 5), (1, 0))  # offset + 2 and + 1
    # What the cropped units can see at all: from unit 0's field to unit 27's (1 + 27 + 5).
    assert crop.reach == Box((1, 0), (32, 32))
    assert crop.box(0, 0) == Box((1, 0), (6, 5))


def test_a_merge_takes_the_union_and_global_layers_the_whole_input() -> None:
    net = loads(
        INPUT
        + _conv("a", "data", "kernel_size: 1")  # r 1, o 0
        + _conv("b", "data", "kernel_size: 5 pad: 2")  # r 5, o -2
        + _layer("cat", "Concat", ["a", "b"])
        + _layer("sum", "Eltwise", ["a", "b"])
        + _layer("g", "Pooling", ["b"], "pooling_param { pool: AVE global_pooling: true }")
        + _layer("fc", "InnerProduct", ["a"], "inner_product_param { num_output: 4 }")
    )
    fields = receptive_fields(net)
    assert (fields["cat"].size, fields["cat"].offset) == ((5, 5), (-2, -2))
    assert fields["sum"] == fields["cat"]
    assert (fields["g"].size, fields["g"].offset) == ((5 + 31, 5 + 31), (-2, -2))
    assert fields["fc"].box(0, 0) == Box((0, 0), (32, 32))


def test_no_rule_is_said_and_never_guessed() -> None:
    net = loads(
        INPUT
        + _layer("spp", "SPP", ["data"], "spp_param { pyramid_height: 2 }")
        + _layer("r", "ReLU", ["spp"])
        + _conv("up", "data", "kernel_size: 4 stride: 2", kind="Deconvolution")
    )
    assert set(receptive_fields(net)) == {"data"}
    with pytest.raises(InputError, match="SPP layer 'spp' has no receptive-field rule"):
        receptive_field(net, "r")
    with pytest.raises(InputError, match="a Deconvolution with a stride has no uniform field"):
        receptive_field(net, "up")


def test_the_input_can_be_named_and_other_inputs_do_not_count() -> None:
    net = loads(
        INPUT
        + 'layer { name: "rois" type: "Input" top: "rois" '
        + "input_param { shape { dim: 1 dim: 5 } } }\n"
        + _conv("c", "data", "kernel_size: 3")
    )
    assert set(receptive_fields(net)) == {"data", "c"}
    assert set(receptive_fields(net, input="rois")) == {"rois"}
    with pytest.raises(InputError, match="does not depend on the input 'rois'"):
        receptive_field(net, "c", input="rois")
    with pytest.raises(InputError, match="'c' is not an input"):
        receptive_fields(net, input="c")


def test_published_fields_of_corpus_nets() -> None:
    """AlexNet conv5 163 px / 16, VGG-16 conv5_3 196 / 16, ResNet-50 res5c 483 / 32: the
    figures quoted for these nets (e.g. Araujo et al., Distill 2019)."""
    if not CORPUS.is_dir():
        pytest.skip("shared corpus not present")
    cases = [
        ("BVLC__caffe__models__bvlc_alexnet__deploy.prototxt", "conv5", 163, 16),
        ("ethereon__netscope__presets__vgg-16.prototxt", "conv5_3", 196, 16),
        (
            "KaimingHe__deep-residual-networks__prototxt__ResNet-50-deploy.prototxt",
            "res5c",
            483,
            32,
        ),
    ]
    for name, blob, size, stride in cases:
        field = receptive_fields(load(CORPUS / name))[blob]
        assert (field.size, field.stride) == ((size, size), (stride, stride)), name
