"""The net <-> weights rule: layers found and missing, renamed layers with the nearest names,
duplicate names, counts and shapes by Caffe's legacy rule, and the policy commands apply."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from protoedit import loads
from protoedit.net.params import param_shapes
from protoedit.weights import (
    Weights,
    WeightsError,
    WeightsWarning,
    match,
    require_match,
)
from tests.helpers import FIXTURES

DEPLOY = FIXTURES / "digits" / "deploy.prototxt"
#: The digits net's parameter shapes (8x8 input, two 3x3 convs, two poolings, two IPs).
SHAPES = {
    "conv1": [(16, 1, 3, 3), (16,)],
    "conv2": [(32, 16, 3, 3), (32,)],
    "ip1": [(64, 32 * 2 * 2), (64,)],
    "ip2": [(10, 64), (10,)],
}


def _net() -> object:
    return loads(DEPLOY.read_text(), path=str(DEPLOY))


def _weights(shapes: dict[str, list[tuple[int, ...]]] = SHAPES, **renamed: str) -> Weights:
    arrays = {
        renamed.get(name, name): [np.zeros(s) for s in blobs] for name, blobs in shapes.items()
    }
    return Weights.from_arrays(arrays, path="model.caffemodel")


def test_weights_that_fit() -> None:
    found = match(_net(), _weights())
    assert found.ok and found.found == ["conv1", "conv2", "ip1", "ip2"] == found.learners
    assert require_match(_net(), _weights()).ok


def test_renamed_layer_is_reported_with_the_nearest_names() -> None:
    weights = _weights(conv2="conv2_old")
    found = match(_net(), weights)
    assert found.missing == ["conv2"]
    assert found.unmatched == {"conv2_old": ["conv2"]}
    assert not found.errors and not found.ok
    with pytest.warns(WeightsWarning) as caught:
        require_match(_net(), weights)
    assert len(caught) == 1  # one summarised warning
    message = str(caught[0].message)
    assert "1 of 4 layers that learn are not in the weights file" in message
    assert (
        "stored layer 'conv2_old' matches no layer of the net (renamed? nearest: 'conv2')"
        in message
    )
    with pytest.raises(WeightsError, match=r"1 of 4 layers that learn .*: 'conv2'") as strict:
        require_match(_net(), weights, strict=True)
    assert str(strict.value).startswith("model.caffemodel: ")
    assert "nearest: 'conv2'" in strict.value.detail


def test_duplicate_layer_names_are_an_error() -> None:
    text = DEPLOY.read_text().replace('name: "conv2"', 'name: "conv1"', 1)
    net = loads(text, path="dup.prototxt")
    found = match(net, _weights())
    assert found.duplicates == ["conv1"]
    with pytest.raises(WeightsError, match="'conv1' is given to more than one layer of the net"):
        require_match(net, _weights())


def test_shape_mismatch_names_layer_role_and_both_shapes() -> None:
    shapes = dict(SHAPES, ip1=[(64, 100), (64,)])
    found = match(_net(), _weights(shapes))
    assert [str(m) for m in found.mismatches] == [
        "layer 'ip1' weight: the net expects 64 x 128, the weights file has 64 x 100"
    ]
    with pytest.raises(WeightsError, match="do not fit the net: layer 'ip1' weight"):
        require_match(_net(), _weights(shapes))


def test_blob_count_mismatch_is_an_error() -> None:
    shapes = dict(SHAPES, ip2=[(10, 64)])  # the bias is missing; the net has bias_term
    found = match(_net(), _weights(shapes))
    assert [str(c) for c in found.counts] == [
        "layer 'ip2' has 2 parameter blobs in the net, 1 in the weights file"
    ]


def test_weights_mixing_v1_and_current_layers_are_an_error() -> None:
    weights = _weights()
    weights["conv1"].v1 = True
    assert match(_net(), weights).mixed
    with pytest.raises(WeightsError, match="mixes V1 'layers' and 'layer'"):
        require_match(_net(), weights)


def test_a_file_over_2_gib_is_refused_as_caffe_refuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read in full (nothing is cut at 2 GiB), but Caffe's protobuf reader refuses it."""
    from protoedit.weights import fit, load, save

    path = tmp_path / "model.caffemodel"
    save(_weights(), path)
    weights = load(path)
    assert weights.size == path.stat().st_size
    assert match(_net(), weights).oversize is None
    monkeypatch.setattr(fit, "MAX_MESSAGE", weights.size - 1)
    with pytest.raises(WeightsError, match=f"has {weights.size} bytes, over the .* \\(2 GiB\\)"):
        require_match(_net(), weights)


def test_weights_of_another_net_are_an_error() -> None:
    other = Weights.from_arrays({"fc": [np.zeros((3, 2))]}, path="other.caffemodel")
    with pytest.raises(WeightsError, match=r"none of the net's layers that learn .* stores 'fc'"):
        require_match(_net(), other)


def test_legacy_shapes_fit_padded_to_4_axes() -> None:
    from protoedit.weights import LayerWeights
    from protoedit.weights.model import StoredBlob

    weights = _weights()
    ip2 = weights["ip2"]
    legacy = [(1, 1, 10, 64), (1, 1, 1, 10)]
    ip2.blobs = [np.zeros(s, np.float32) for s in legacy]
    ip2.stored = [StoredBlob([], s, True, False) for s in legacy]
    assert match(_net(), weights).ok
    ip2.stored = [StoredBlob([], s, False, False) for s in legacy]  # a modern shape must equal
    assert len(match(_net(), weights).mismatches) == 2
    assert isinstance(ip2, LayerWeights)


def test_a_train_net_is_matched_in_the_test_phase() -> None:
    """Two data layers share a name in TRAIN and TEST: no duplicate; TRAIN-only layers that
    learn are not required."""
    text = DEPLOY.read_text() + (
        'layer { name: "aux" type: "InnerProduct" bottom: "ip2" top: "aux" '
        "inner_product_param { num_output: 2 } include { phase: TRAIN } }\n"
        'layer { name: "aux" type: "InnerProduct" bottom: "ip2" top: "aux2" '
        "inner_product_param { num_output: 2 } include { phase: TRAIN } }\n"
    )
    found = match(loads(text, path="train.prototxt"), _weights())
    assert found.ok and "aux" not in found.learners


def test_no_warning_when_everything_fits() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        require_match(_net(), _weights())


@pytest.mark.parametrize(
    ("layer", "ins", "expected"),
    [
        (
            'type: "Convolution" '
            "convolution_param { num_output: 8 group: 2 kernel_h: 3 kernel_w: 5 }",
            [(1, 4, 9, 9)],
            [(8, 2, 3, 5), (8,)],
        ),
        (
            'type: "Deconvolution" '
            "convolution_param { num_output: 8 group: 4 kernel_size: 2 bias_term: false }",
            [(1, 4, 9, 9)],
            [(4, 2, 2, 2)],
        ),
        (
            'type: "InnerProduct" inner_product_param { num_output: 5 transpose: true }',
            [(2, 3, 4, 4)],
            [(48, 5), (5,)],
        ),
        (
            'type: "InnerProduct" inner_product_param { num_output: 5 axis: 2 }',
            [(2, 3, 4)],
            [(5, 4), (5,)],
        ),
        ('type: "BatchNorm"', [(1, 6, 4, 4)], [(6,), (6,), (1,)]),
        ('type: "Scale" scale_param { bias_term: true }', [(1, 6, 4, 4)], [(6,), (6,)]),
        ('type: "Scale" scale_param { axis: 0 num_axes: -1 }', [(1, 6, 4, 4)], [(1, 6, 4, 4)]),
        (
            'type: "Scale" bottom: "a" bottom: "b" scale_param { bias_term: true }',
            [(1, 6, 4, 4), (6,)],
            [(6,)],
        ),
        ('type: "PReLU" prelu_param { channel_shared: true }', [(1, 6, 4, 4)], [()]),
        ('type: "PReLU"', [(1, 6, 4, 4)], [(6,)]),
        ('type: "Embed" embed_param { num_output: 4 input_dim: 10 }', [(3,)], [(10, 4), (4,)]),
        (
            'type: "Convolution" convolution_param { num_output: 8 kernel_size: 3 }',
            [None],
            [None, None],
        ),
    ],
)
def test_parameter_shapes_follow_caffe(
    layer: str, ins: list[tuple[int, ...] | None], expected: list[object]
) -> None:
    message = loads(f"layer {{ name: 'x' {layer} }}").message.layer[0]
    assert param_shapes(message, ins) == expected


def test_unknown_types_have_no_parameter_shapes() -> None:
    message = loads('layer { name: "x" type: "FancyFork" }').message.layer[0]
    assert param_shapes(message, [(1, 2)]) is None


def test_package_match_stays_the_function_after_every_submodule_is_imported() -> None:
    """``protoedit.weights.match`` is a function, not shadowed by a submodule of that name
    (the module was ``match.py``; importing it by name rebound the package attribute)."""
    import importlib
    import pkgutil

    import protoedit.weights as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"protoedit.weights.{info.name}")
    from protoedit.weights import match as imported

    assert callable(imported) and not isinstance(imported, type(package))
    assert imported.__name__ == "match"
    assert package.match is imported
