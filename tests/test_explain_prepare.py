"""The nets ``gradients`` builds in memory, checked without Caffe."""

from __future__ import annotations

from pathlib import Path

import pytest

from protoedit import load
from protoedit.errors import InputError
from protoedit.explain import prepare
from protoedit.net.view import NetView
from protoedit.rewrites import LOSS_TOP, LossHead
from protoedit.schema import builtin_schema
from protoedit.weights import stored_shapes

from .assets.digits import FIXTURES

TRAIN = FIXTURES / "train.prototxt"


def test_a_document_given_stays_untouched() -> None:
    doc = load(FIXTURES / "deploy.prototxt")
    before = doc.dumps()
    rewritten, report = prepare(doc, target="conv2", head=LossHead("channel", 1))
    assert doc.dumps() == before
    assert rewritten.message.force_backward
    names = [layer.name for layer in rewritten.message.layer]
    assert "ip1" not in names and "conv2" in names
    assert any(LOSS_TOP in layer.top for layer in rewritten.message.layer)
    assert report.changed


def test_loss_net_keeps_what_computes_the_loss(tmp_path: Path) -> None:
    text = TRAIN.read_text() + (
        'layer {\n  name: "accuracy"\n  type: "Accuracy"\n  bottom: "ip2"\n  bottom: "label"\n'
        '  top: "accuracy"\n  include { phase: TEST }\n}\n'
    )
    path = tmp_path / "with_accuracy.prototxt"
    path.write_text(text)
    doc, _ = prepare(path, loss="loss")
    names = [info.name for info in NetView(doc).layers]
    assert "accuracy" not in names  # Accuracy aborts in backward: not an ancestor, dropped
    assert names[-1] == "loss" and doc.message.force_backward
    with pytest.raises(InputError, match=r"layer 'accuracy' \(Accuracy\) cannot run backward"):
        prepare(path, target="accuracy")


def test_exactly_one_of_target_and_loss() -> None:
    with pytest.raises(InputError, match="exactly one"):
        prepare(TRAIN)
    with pytest.raises(InputError, match="exactly one"):
        prepare(TRAIN, target="ip2", loss="loss")


def test_v1_weights_files_are_read_by_layer_name(tmp_path: Path) -> None:
    net = builtin_schema().message_class("NetParameter")()
    layer = net.layers.add(name="conv1")
    blob = layer.blobs.add()
    blob.num, blob.channels, blob.height, blob.width = 16, 1, 3, 3
    blob.data.extend([0.0] * 16 * 3 * 3)
    path = tmp_path / "v1.caffemodel"
    path.write_bytes(net.SerializeToString())
    assert stored_shapes(path) == {"conv1": [((16, 1, 3, 3), True)]}
