"""Static shape inference, layer by layer, against shapes worked out by hand from Caffe's
formulas (no Caffe needed; ``test_shapes_caffe.py`` compares whole nets with Caffe).

Caffe's formulas used below (from its layer sources):

- Convolution: ``out = (in + 2p - (d(k-1)+1)) / s + 1``, integer division;
- Deconvolution: ``out = s(in-1) + d(k-1)+1 - 2p``;
- Pooling: ``out = ceil((in + 2p - k) / s) + 1`` (``floor`` with ``round_mode: FLOOR``), then
  one less if the last window would start in the padding (``(out-1)s >= in + p``).
"""

from __future__ import annotations

import pytest

from protoedit import InputError, loads
from protoedit.net import NetView
from protoedit.net.shapes import Shape, infer_shapes
from protoedit.rewrites import LossHead, add_loss


def _net(dims: list[list[int]], layers: str) -> NetView:
    """A net with one Input layer per shape (tops in0, in1, ...) followed by ``layers``."""
    inputs = "".join(
        f'layer {{ name: "in{i}" type: "Input" top: "in{i}" input_param {{ shape {{ '
        + " ".join(f"dim: {d}" for d in shape)
        + " } } }\n"
        for i, shape in enumerate(dims)
    )
    return NetView(loads(f'name: "t"\n{inputs}{layers}'))


def _tops(dims: list[list[int]], layer: str) -> list[Shape | None]:
    """The shapes of the last layer's tops."""
    view = _net(dims, layer)
    shapes = infer_shapes(view)
    return [shapes[w] for w in view.layers[-1].writes]


def _one(dims: list[int], layer: str) -> Shape | None:
    [shape] = _tops([dims], layer)
    return shape


def _layer(kind: str, param: str, bottoms: tuple[str, ...] = ("in0",), tops: int = 1) -> str:
    text = f'layer {{ name: "x" type: "{kind}" '
    text += "".join(f'bottom: "{b}" ' for b in bottoms)
    text += "".join(f'top: "x{i}" ' for i in range(tops))
    return text + param + " }\n"


POOL = "Pooling"
CASES = [
    # Pooling, ceil mode: ceil((7-2)/2)+1 = 4; floor mode: floor(2.5)+1 = 3.
    ([1, 2, 7, 7], POOL, "pooling_param { kernel_size: 2 stride: 2 }", [1, 2, 4, 4]),
    (
        [1, 2, 7, 7],
        POOL,
        "pooling_param { kernel_size: 2 stride: 2 round_mode: FLOOR }",
        [1, 2, 3, 3],
    ),
    # pad 1: ceil((6+2-3)/2)+1 = 4 and (4-1)*2 = 6 < 6+1 keeps it.
    ([1, 2, 6, 6], POOL, "pooling_param { kernel_size: 3 stride: 2 pad: 1 }", [1, 2, 4, 4]),
    # pad 1: ceil((5+2-2)/2)+1 = 4, but (4-1)*2 = 6 >= 5+1: the last window goes, 3.
    ([1, 2, 5, 5], POOL, "pooling_param { kernel_size: 2 stride: 2 pad: 1 }", [1, 2, 3, 3]),
    # kernel_h/kernel_w, stride_h/stride_w: ceil((9-3)/1)+1 = 7, ceil((9-1)/4)+1 = 3.
    (
        [1, 2, 9, 9],
        POOL,
        "pooling_param { kernel_h: 3 kernel_w: 1 stride_h: 1 stride_w: 4 }",
        [1, 2, 7, 3],
    ),
    ([1, 16, 13, 13], POOL, "pooling_param { pool: AVE global_pooling: true }", [1, 16, 1, 1]),
    # Dilation 2 makes a 3-kernel span 5: (10-5)/1+1 = 6; with pad 1, stride 2: 7//2+1 = 4.
    (
        [1, 3, 10, 10],
        "Convolution",
        "convolution_param { num_output: 8 kernel_size: 3 dilation: 2 }",
        [1, 8, 6, 6],
    ),
    (
        [1, 3, 10, 10],
        "Convolution",
        "convolution_param { num_output: 8 kernel_size: 3 dilation: 2 pad: 1 stride: 2 }",
        [1, 8, 4, 4],
    ),
    # Per-axis kernel and stride: 10-3+1 = 8, (12-5)//2+1 = 4.
    (
        [1, 3, 10, 12],
        "Convolution",
        "convolution_param { num_output: 2 kernel_h: 3 kernel_w: 5 stride_h: 1 stride_w: 2 }",
        [1, 2, 8, 4],
    ),
    # One value per spatial axis, 3-D convolution: 6-3+1 = 4, 7-2+1 = 6, 8-1+1 = 8.
    (
        [1, 1, 6, 7, 8],
        "Convolution",
        "convolution_param { num_output: 2 kernel_size: 3 kernel_size: 2 kernel_size: 1 }",
        [1, 2, 4, 6, 8],
    ),
    # Deconvolution: 2*(5-1) + 4 - 2 = 10.
    (
        [1, 4, 5, 5],
        "Deconvolution",
        "convolution_param { num_output: 3 kernel_size: 4 stride: 2 pad: 1 }",
        [1, 3, 10, 10],
    ),
    # ... with dilation 2 (span 3): 1*(5-1) + 3 = 7.
    (
        [1, 4, 5, 5],
        "Deconvolution",
        "convolution_param { num_output: 3 kernel_size: 2 dilation: 2 }",
        [1, 3, 7, 7],
    ),
    # Reshape: 0 copies the input axis, -1 takes what is left (2*3*4*5 = 120).
    ([2, 3, 4, 5], "Reshape", "reshape_param { shape { dim: 0 dim: -1 } }", [2, 60]),
    ([2, 3, 4, 5], "Reshape", "reshape_param { shape { dim: 0 dim: 0 dim: -1 } }", [2, 3, 20]),
    (
        [2, 3, 4, 5],
        "Reshape",
        "reshape_param { shape { dim: -1 } axis: 1 num_axes: 2 }",
        [2, 12, 5],
    ),
    # axis -1 with num_axes 0 inserts after the last axis.
    (
        [2, 3, 4, 5],
        "Reshape",
        "reshape_param { shape { dim: 1 } axis: -1 num_axes: 0 }",
        [2, 3, 4, 5, 1],
    ),
    ([2, 3, 4, 5], "Flatten", "", [2, 60]),
    ([2, 3, 4, 5], "Flatten", "flatten_param { axis: 2 end_axis: 3 }", [2, 3, 20]),
    ([2, 3, 4, 5], "Flatten", "flatten_param { axis: 0 end_axis: 1 }", [6, 4, 5]),
    ([2, 3, 4, 5], "Reduction", "reduction_param { axis: 0 }", []),
    ([2, 3, 4, 5], "Reduction", "reduction_param { operation: SUMSQ axis: 2 }", [2, 3]),
    ([2, 3, 4, 5], "Reduction", "reduction_param { axis: -1 }", [2, 3, 4]),
    ([2, 3, 4, 5], "InnerProduct", "inner_product_param { num_output: 10 }", [2, 10]),
    ([2, 3, 4, 5], "InnerProduct", "inner_product_param { num_output: 7 axis: 2 }", [2, 3, 7]),
    ([2, 3, 4, 5], "ReLU", "", [2, 3, 4, 5]),
]


@pytest.mark.parametrize(("dims", "kind", "param", "expected"), CASES)
def test_layer_shape(dims: list[int], kind: str, param: str, expected: Shape) -> None:
    assert _one(dims, _layer(kind, param)) == expected


def test_slice_at_points_and_evenly() -> None:
    points = _layer("Slice", "slice_param { axis: 1 slice_point: 1 slice_point: 4 }", tops=3)
    assert _tops([[2, 6, 4, 4]], points) == [[2, 1, 4, 4], [2, 3, 4, 4], [2, 2, 4, 4]]
    even = _layer("Slice", "slice_param { axis: -1 }", tops=2)
    assert _tops([[2, 6, 4, 4]], even) == [[2, 6, 4, 2], [2, 6, 4, 2]]


def test_crop_takes_the_reference_shape_from_its_axis_on() -> None:
    crop = _layer("Crop", "crop_param { axis: 2 offset: 1 }", ("in0", "in1"))
    assert _tops([[1, 3, 10, 10], [1, 1, 6, 7]], crop) == [[1, 3, 6, 7]]
    crop = _layer("Crop", "crop_param { axis: 1 }", ("in0", "in1"))
    assert _tops([[1, 3, 10, 10], [1, 2, 6, 7]], crop) == [[1, 2, 6, 7]]


def test_concat_adds_up_its_axis() -> None:
    concat = _layer("Concat", "", ("in0", "in1"))
    assert _tops([[2, 3, 4, 4], [2, 5, 4, 4]], concat) == [[2, 8, 4, 4]]
    concat = _layer("Concat", "concat_param { axis: 0 }", ("in0", "in1"))
    assert _tops([[2, 3, 4, 4], [1, 3, 4, 4]], concat) == [[3, 3, 4, 4]]


def test_unknown_layer_and_everything_after_it_is_none() -> None:
    layers = _layer("Bogus", "") + 'layer { name: "r" type: "ReLU" bottom: "x0" top: "r" }\n'
    assert _one([1, 3, 4, 4], layers) is None


def test_input_without_a_shape_is_unknown_not_an_error() -> None:
    # Caffe leaves such tops unshaped (pycaffe reshapes them): nothing to infer.
    text = 'layer { name: "in0" type: "Input" top: "in0" }\n' + _layer(
        "Convolution", "convolution_param { num_output: 4 kernel_size: 3 }"
    )
    doc = loads(text)
    view = NetView(doc)
    assert infer_shapes(view)[view.layers[-1].writes[0]] is None
    with pytest.raises(InputError, match="cannot tell the shape of 'x0'"):
        add_loss(doc, "x0", LossHead("unit", 0))


BAD = [
    ("convolution_param { num_output: 4 kernel_size: 3 stride: 0 }", "must be positive"),
    (
        "convolution_param { num_output: 4 kernel_size: 3 kernel_size: 3 kernel_size: 3 }",
        "kernel has 3 values for 2 spatial axes",
    ),
    ("convolution_param { num_output: 4 kernel_size: 10 }", "the output would be 1x4x-1x-1"),
    ("convolution_param { num_output: 4 }", "must be positive"),
]


@pytest.mark.parametrize(("param", "reason"), BAD)
def test_a_bad_layer_is_a_located_input_error(param: str, reason: str) -> None:
    text = (
        'layer { name: "in0" type: "Input" top: "in0" input_param { shape { '
        "dim: 1 dim: 3 dim: 8 dim: 8 } } }\n"
        'layer { name: "ok" type: "ReLU" bottom: "in0" top: "ok" }\n'
        f'layer {{ name: "bad" type: "Convolution" bottom: "ok" top: "bad" {param} }}\n'
    )
    doc = loads(text, path="net.prototxt")
    view = NetView(doc)
    shapes = infer_shapes(view)
    assert shapes[view.layers[1].writes[0]] == [1, 3, 8, 8]  # lazily: its ancestors only
    with pytest.raises(InputError, match=reason) as caught:
        shapes.get(view.layers[2].writes[0])
    assert "cannot infer the shape of layer 'bad'" in str(caught.value)
    assert str(caught.value).startswith("net.prototxt:3:1:")


@pytest.mark.parametrize(
    ("kind", "param", "tops", "reason"),
    [
        ("Slice", "slice_param { axis: 1 }", 2, "do not split evenly"),
        ("Slice", "slice_param { slice_point: 1 }", 3, "1 slice points for 3 tops"),
        ("Reshape", "reshape_param { shape { dim: 7 dim: -1 } }", 1, "do not reshape"),
        ("Reshape", "reshape_param { shape { dim: -1 dim: -1 } }", 1, "at most one"),
        ("Flatten", "flatten_param { axis: 4 }", 1, "axis 4 is out of range"),
        ("Pooling", "pooling_param { stride: 2 }", 1, "must be positive"),
    ],
)
def test_other_bad_parameters(kind: str, param: str, tops: int, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        _tops([[1, 3, 8, 8]], _layer(kind, param, tops=tops))


def test_a_channel_head_needs_no_shape_of_later_layers() -> None:
    text = (
        'layer { name: "in0" type: "Input" top: "in0" input_param { shape { '
        "dim: 1 dim: 3 dim: 8 dim: 8 } } }\n"
        'layer { name: "conv" type: "Convolution" bottom: "in0" top: "conv" '
        "convolution_param { num_output: 4 kernel_size: 3 } }\n"
        'layer { name: "bad" type: "Convolution" bottom: "conv" top: "bad" '
        "convolution_param { num_output: 4 kernel_size: 3 stride: 0 } }\n"
    )
    doc = loads(text)
    report = add_loss(doc, "conv", LossHead("channel", 3))
    assert "channel 3 of 'conv'" in report.changed[-1]
    assert loads(doc.dumps()).message.layer[-1].type == "Silence"
