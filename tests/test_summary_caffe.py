"""The summary against Caffe: blob shapes on the corpus, parameter counts of trained models,
and receptive fields as the support of input gradients (handlers: ``summary_in_caffe.py``,
run in the shared warm worker)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from protoedit import ProtoeditError, load
from protoedit.caffe import CaffeRunError, PythonLayersRefused, Session
from protoedit.caffe.build import caffe_proto_path
from protoedit.document import Document
from protoedit.net.layers import PYTHON, is_a, is_data_layer
from protoedit.net.receptive import receptive_field
from protoedit.net.state import NetState, layer_included
from protoedit.net.summary import summary
from protoedit.schema import Schema
from protoedit.weights import stored_shapes

from .assets.digits import TrainedDigits
from .assets.models import CachedModel
from .helpers import CORPUS, report_lines

pytestmark = pytest.mark.caffe
HANDLER = "tests.summary_in_caffe"


def _load(path: Path) -> Document:
    """The net with the built-in schema, else with the Caffe build's (the fork types)."""
    try:
        return load(path)
    except ProtoeditError:
        return load(path, schema=Schema.from_file(caffe_proto_path()))


def _static_skip(doc: Document) -> str | None:
    """Why Caffe cannot build the net on this machine, when that is plain from the file."""
    if not doc.message_type.endswith(".NetParameter"):
        return f"not a net ({doc.message_type})"
    net = doc.message
    layers = [layer for layer in net.layer if layer_included(layer, NetState("TEST"))]
    data = [layer.name for layer in [*layers, *net.layers] if is_data_layer(layer)]
    if data:
        return f"reads dataset files this machine lacks (data layers {', '.join(data)})"
    if any(is_a(layer.type, PYTHON) for layer in layers):
        return "has Python layers (their modules are not here)"
    return None


def _ours(doc: Document) -> dict[str, Any]:
    """Each blob's shape (its final value) and why it is unknown, and the rows."""
    result = summary(doc)
    shapes: dict[str, Any] = {}
    reasons: dict[str, tuple[str, ...]] = {}
    for row in result.rows:
        shapes.update(zip(row.tops, row.shapes, strict=True))
        reasons.update((top, row.unknown) for top in row.tops)
    return {"shapes": shapes, "rows": result.rows, "reasons": reasons}


@pytest.mark.slow
def test_shapes_equal_caffes_on_every_corpus_net_it_loads(caffe_session: Session) -> None:
    """One request per net in the warm worker; a net that kills it is listed with Caffe's
    reason (the session starts a fresh worker for the next).  About 50 s: slow."""
    if not CORPUS.is_dir():
        pytest.skip("shared corpus not present")
    compared, skipped, unknown = [], [], []
    for path in sorted(CORPUS.glob("*.prototxt")):
        try:
            doc = _load(path)
        except ProtoeditError as exc:
            first = str(exc).splitlines()[0]
            skipped.append(
                f"{path.name}: neither the built-in schema nor this Caffe's reads it: {first}"
            )
            continue
        reason = _static_skip(doc)
        if reason is not None:
            skipped.append(f"{path.name}: {reason}")
            continue
        try:
            caffe = caffe_session.request(HANDLER, "blobs", net=str(path))
        except (CaffeRunError, PythonLayersRefused) as exc:
            skipped.append(f"{path.name}: Caffe cannot load it: {str(exc).splitlines()[0]}")
            continue
        ours = _ours(doc)
        checked = 0
        for blob, shape in caffe["blobs"].items():
            if blob not in ours["shapes"]:
                assert "_split_" in blob, (path.name, blob)  # Caffe's own Split copies
                continue
            if ours["shapes"][blob] is None:  # said, with the type that has no rule
                [reason] = [r for r in ours["reasons"][blob] if r.startswith("shape: ")]
                assert "has no shape rule" in reason, (path.name, blob, reason)
                unknown.append(f"{path.name}: {blob} ({reason})")
                continue
            assert ours["shapes"][blob] == shape, (path.name, blob)
            checked += 1
        for row in ours["rows"]:  # parameter counts too, layer by layer
            if row.name in caffe["params"] and row.params is not None:
                assert row.params == sum(math.prod(s) for s in caffe["params"][row.name])
        compared.append(f"{path.name}: {checked} blobs equal")
    report_lines(
        "summary shapes against Caffe",
        [*compared, *(f"skipped {line}" for line in skipped), *(f"unknown {u}" for u in unknown)],
    )
    assert len(compared) >= 10, compared
    names = " ".join(compared)
    for net in ("ResNet-50-deploy", "bvlc_googlenet__deploy", "vgg-16", "voc-fcn8s__deploy"):
        assert net in names


def _stored_counts(weights: Path) -> dict[str, int]:
    return {
        name: sum(math.prod(shape) for shape, _ in blobs)
        for name, blobs in stored_shapes(weights).items()
    }


@pytest.mark.parametrize("model", ["nsfw", "digits"])
def test_parameter_counts_equal_the_blobs_of_trained_models(
    model: str, request: pytest.FixtureRequest
) -> None:
    fixture: CachedModel | TrainedDigits = request.getfixturevalue(
        "nsfw_model" if model == "nsfw" else "digits_model"
    )
    doc = load(fixture.deploy)
    stored = _stored_counts(fixture.weights)
    rows = {row.name: row for row in summary(doc).rows}
    with_params = {name: row.params for name, row in rows.items() if row.params}
    assert with_params == stored
    checked = summary(doc, weights=fixture.weights)
    assert checked.totals.mismatches == 0
    assert checked.totals.stored_params == checked.totals.params == sum(stored.values())


#: Nets for the receptive-field proofs: a plain stack, whose pooling has Caffe's clipped last
#: window (c1 is 20 rows: ceil((20 + 2 - 3) / 2) + 1 = 11 windows, the last starting at row
#: 2·10 - 1 = 19: one row of c1, one of padding, one past it), and one with dilation and
#: padding.  Kernels at least as wide as the stride before them keep every field free of
#: holes, so with positive weights the support must fill the box.
PLAIN = """
force_backward: true
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 1 dim: 2 dim: 41 dim: 39 } } }
layer { name: "c1" type: "Convolution" bottom: "data" top: "c1"
  convolution_param { num_output: 3 kernel_size: 3 stride: 2 } }
layer { name: "pool" type: "Pooling" bottom: "c1" top: "pool"
  pooling_param { pool: POOL kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "c2" type: "Convolution" bottom: "pool" top: "c2"
  convolution_param { num_output: 3 kernel_h: 3 kernel_w: 2 } }
RELU
layer { name: "c3" type: "Convolution" bottom: "c2" top: "c3"
  convolution_param { num_output: 2 kernel_size: 3 pad: 1 } }
"""
DILATED = """
force_backward: true
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 1 dim: 2 dim: 48 dim: 44 } } }
layer { name: "c1" type: "Convolution" bottom: "data" top: "c1"
  convolution_param { num_output: 3 kernel_size: 3 pad: 1 } }
layer { name: "c2" type: "Convolution" bottom: "c1" top: "c2"
  convolution_param { num_output: 3 kernel_size: 3 dilation: 2 pad: 2 } }
RELU
layer { name: "c3" type: "Convolution" bottom: "c2" top: "c3"
  convolution_param { num_output: 3 kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "pool" type: "Pooling" bottom: "c3" top: "pool"
  pooling_param { pool: POOL kernel_size: 2 stride: 1 pad: 1 } }
layer { name: "c4" type: "Convolution" bottom: "pool" top: "c4"
  convolution_param { num_output: 2 kernel_size: 3 dilation: 3 pad: 3 } }
"""
RELU = 'layer { name: "relu" type: "ReLU" bottom: "c2" top: "c2" }'


def _net(template: str, positive: bool) -> str:
    """The proof net: AVE pooling and no ReLU when the support must fill the box, MAX
    pooling and a ReLU (which may cut it) otherwise."""
    text = template.replace("POOL", "AVE" if positive else "MAX")
    return text.replace("RELU\n", "" if positive else RELU + "\n")


@pytest.mark.parametrize("template", [PLAIN, DILATED], ids=["plain", "dilated"])
@pytest.mark.parametrize("positive", [True, False], ids=["fills", "within"])
def test_receptive_fields_are_the_support_of_input_gradients(
    template: str, positive: bool, caffe_session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "net.prototxt"
    path.write_text(_net(template, positive))
    doc = load(path)
    target = "c3" if template is PLAIN else "c4"
    field = receptive_field(doc, target)
    shape = {r.tops[0]: r.shapes[0] for r in summary(doc).rows}[target]
    assert shape is not None
    h, w = shape[2:]
    units = [(0, 0), (h // 2, w // 3), (h - 1, w - 1), (0, w - 1), (h - 1, 1)]
    answer = caffe_session.request(
        HANDLER, "support", net=str(path), target=target, units=units, positive=positive
    )
    assert answer["shape"] == shape
    for (y, x), found in zip(units, answer["units"], strict=True):
        box = field.box(y, x)
        assert found["box"] is not None, (y, x)
        top, left, bottom, right = found["box"]
        assert box.begin[0] <= top and bottom <= box.end[0], ((y, x), box, found)
        assert box.begin[1] <= left and right <= box.end[1], ((y, x), box, found)
        if positive:
            assert [top, left, bottom, right] == [*box.begin, *box.end], ((y, x), box)
            assert found["count"] == math.prod(box.size), ((y, x), box)
