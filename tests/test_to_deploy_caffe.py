"""``to_deploy`` on real train/val nets: the layers of the shipped deploy net, and Caffe runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from protoedit import load
from protoedit.rewrites import to_deploy
from protoedit.validate import validate_net

pytestmark = pytest.mark.caffe

#: train_val shipped beside a deploy.prototxt in the Caffe source package.
PAIRS = ["bvlc_alexnet", "bvlc_reference_caffenet", "finetune_flickr_style"]


def _layers(net: object) -> list[tuple[str, str, list[str], list[str]]]:
    layers = net.layer  # type: ignore[attr-defined]
    return [(layer.name, layer.type, list(layer.bottom), list(layer.top)) for layer in layers]


@pytest.mark.parametrize("model", PAIRS)
def test_train_val_becomes_the_shipped_deploy_net(
    model: str, caffe_models: Path, tmp_path: Path
) -> None:
    doc = load(caffe_models / model / "train_val.prototxt")
    report = to_deploy(doc, input_channels=3, batch=2)
    deploy = load(caffe_models / model / "deploy.prototxt").message
    ours = doc.message
    # Layer for layer the shipped deploy net, down to the Softmax "prob" on top.
    assert _layers(ours) == _layers(deploy)
    assert ours.layer[-1].type == "Softmax"
    original = {
        layer.name: layer
        for layer in load(caffe_models / model / "train_val.prototxt").message.layer
    }
    for mine in ours.layer[1:-1]:  # kept layers are untouched (shipped deploy files vary here)
        assert mine == original[mine.name], mine.name
    assert list(ours.layer[0].input_param.shape[0].dim)[1:] == [3, 227, 227]
    assert any("data layers -> Input layer" in line for line in report.changed)
    # Caffe builds and runs the result (zero input gradient: no loss, no force_backward).
    path = tmp_path / "deploy.prototxt"
    doc.save(path)
    result = validate_net(path)
    assert result.status == "failed", result.reason
    assert result.blobs["prob"] == [2, int(ours.layer[-2].inner_product_param.num_output)]


def test_batch_replaces_the_data_layers_batch(caffe_models: Path) -> None:
    doc = load(caffe_models / "bvlc_googlenet" / "train_val.prototxt")
    report = to_deploy(doc, input_channels=3, batch=1)
    assert list(doc.message.layer[0].input_param.shape[0].dim) == [1, 3, 224, 224]
    assert "(data: 1 x 3 x 224 x 224)" in report.changed[-1]
