"""The smallest input extent proved to run like the declared one (no Caffe needed; the
verdicts are compared in Caffe by ``test_validate_pool.py``)."""

from __future__ import annotations

import pytest

from protoedit import loads
from protoedit.net import NetView
from protoedit.net.extent import STEPS, Extent, extent_of, smallest_extent
from protoedit.rewrites import LossHead, add_loss

INPUT = 'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 64 dim: 48 } } }\n'  # noqa: E501
CONV = (
    'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}"\n'
    "  convolution_param {{ num_output: 4 kernel_size: {k} stride: {s} pad: {p} }} }}\n"
)
POOL_ALL = (
    'layer { name: "pool" type: "Pooling" bottom: "c2" top: "pool"\n'
    "  pooling_param { pool: AVE global_pooling: true } }\n"
)


def _conv(name: str, bottom: str, k: int = 3, s: int = 1, p: int = 1) -> str:
    return CONV.format(name=name, bottom=bottom, k=k, s=s, p=p)


def _extent(text: str) -> Extent:
    return smallest_extent(NetView(loads(f'name: "t"\n{text}')))


def test_a_fully_convolutional_net_runs_at_a_sixteenth() -> None:
    found = _extent(INPUT + _conv("c1", "data") + _conv("c2", "c1", s=2))
    assert found.reduced and not found.note
    assert found.declared == {"data": [2, 3, 64, 48]}
    assert found.shapes == {"data": [2, 3, 64 // STEPS, 48 // STEPS]}  # batch and channels kept


def test_an_inner_product_keeps_what_it_reads() -> None:
    # lenet's arithmetic: 28 -> conv 5 -> 24 -> pool 2/2 -> 12 -> conv 5 -> 8 -> pool -> 4; the
    # InnerProduct's weights are sized for 4x4, and 25 is the smallest input giving 4x4 again.
    lenet = (
        'layer { name: "data" type: "Input" top: "data" '
        "input_param { shape { dim: 1 dim: 1 dim: 28 dim: 28 } } }\n"
        + _conv("c1", "data", k=5, p=0)
        + 'layer { name: "p1" type: "Pooling" bottom: "c1" top: "p1" '
        "pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
        + _conv("c2", "p1", k=5, p=0)
        + 'layer { name: "p2" type: "Pooling" bottom: "c2" top: "p2" '
        "pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
        'layer { name: "ip" type: "InnerProduct" bottom: "p2" top: "ip" '
        "inner_product_param { num_output: 10 } }\n"
    )
    found = _extent(lenet)
    assert found.shapes == {"data": [1, 1, 25, 25]}  # 25 = ceil(28 * 14 / 16)


def test_an_inner_product_on_the_input_keeps_the_declared_extent() -> None:
    found = _extent(
        INPUT + 'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
        "inner_product_param { num_output: 10 } }\n"
    )
    assert not found.reduced
    assert "layer 'ip' (InnerProduct) depends on the extent of its inputs" in found.note


def test_global_pooling_lets_an_inner_product_follow() -> None:
    found = _extent(
        INPUT
        + _conv("c1", "data")
        + _conv("c2", "c1")
        + POOL_ALL
        + 'layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip" '
        "inner_product_param { num_output: 10 } }\n"
    )
    assert found.shapes == {"data": [2, 3, 4, 3]}


def _branches(side: int) -> str:
    """Two convolutions of one input summed: 3x3/2 and 2x2/2 without padding agree on odd
    extents only."""
    return (
        'layer { name: "data" type: "Input" top: "data" '
        f"input_param {{ shape {{ dim: 1 dim: 3 dim: {side} dim: {side} }} }} }}\n"
        + _conv("a", "data", k=3, s=2, p=0)
        + _conv("b", "data", k=2, s=2, p=0)
        + 'layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "sum" }\n'
    )


def test_branches_that_stop_matching_are_refused() -> None:
    # From 33, a sixteenth is 3 (odd: both branches give 1x1).  From 63, every candidate
    # (ceil(63 k / 16) for k < 16) is even, where Caffe's Eltwise would abort.
    assert _extent(_branches(33)).shapes["data"][2:] == [3, 3]
    kept = _extent(_branches(63))
    assert not kept.reduced
    assert "the inputs of layer 'sum' (Eltwise) would no longer match" in kept.note


@pytest.mark.parametrize(
    ("param", "reduced"),
    [
        ("", True),
        ("scale_param { axis: 1 num_axes: -1 }", False),
        ("scale_param { num_axes: 0 }", True),
    ],
)
def test_a_one_input_scale_depends_on_the_axes_it_covers(param: str, reduced: bool) -> None:
    scale = f'layer {{ name: "s" type: "Scale" bottom: "c1" top: "c1" {param} }}\n'
    found = _extent(INPUT + _conv("c1", "data") + scale)
    assert found.reduced is reduced
    if not reduced:
        assert "layer 's' (Scale)" in found.note


def test_a_unit_head_keeps_the_measured_position() -> None:
    doc = loads(f'name: "t"\n{INPUT}{_conv("c1", "data")}')
    add_loss(doc, "c1", LossHead(kind="unit", channel=1, position=(40, 30)))
    found = smallest_extent(NetView(doc))
    assert found.reduced
    height, width = found.shapes["data"][2:]
    assert height > 40 and width > 30  # the unit's slices still have it


def test_an_unknown_layer_type_keeps_the_declared_extent() -> None:
    found = _extent(INPUT + 'layer { name: "x" type: "MyFancy" bottom: "data" top: "x" }\n')
    assert not found.reduced
    assert "layer 'x' (MyFancy) cannot be inferred" in found.note


def test_nets_without_spatial_inputs_or_without_shapes() -> None:
    flat = 'layer { name: "v" type: "Input" top: "v" input_param { shape { dim: 4 dim: 10 } } }\n'
    assert _extent(flat).note == "" and not _extent(flat).reduced  # nothing to keep
    bare = 'input: "data"\nlayer { name: "r" type: "ReLU" bottom: "data" top: "r" }\n'
    assert "no declared shape for input 'data'" in _extent(bare).note


def test_a_net_protoedit_cannot_read_keeps_the_declared_extent() -> None:
    found = extent_of("layer { name: ", "TEST", "broken.prototxt")
    assert not found.reduced and found.note.startswith("protoedit cannot read the net: ")
    assert "broken.prototxt:1:" in found.note
