"""Static shape inference agrees with the shapes Caffe computes, blob by blob."""

from __future__ import annotations

from pathlib import Path

import pytest

from protoedit import load
from protoedit.net import INPUT, NetView
from protoedit.net.shapes import infer_shapes
from protoedit.validate import validate

from .helpers import CORPUS

pytestmark = pytest.mark.caffe
CORPUS_NETS = [
    "KaimingHe__deep-residual-networks__prototxt__ResNet-50-deploy.prototxt",
    "forresti__SqueezeNet__SqueezeNet_v1.1__deploy.prototxt",
    "shicai__MobileNet-Caffe__mobilenet_v2_deploy.prototxt",
    "soeaver__caffe-model__cls__inception__deploy_inception-v3.prototxt",
    "shelhamer__fcn.berkeleyvision.org__voc-fcn8s__deploy.prototxt",  # Deconvolution, Crop
]


def _compare(path: Path) -> int:
    view = NetView(load(path))
    ours = infer_shapes(view)
    report = validate(path, memory_limit=16 * 2**30)
    assert report.blobs, report.reason
    checked = 0
    for name, caffe_shape in report.blobs.items():
        version = view.final.get(name)
        if version is None or version.producer == INPUT:
            continue  # Caffe's Split copies, and header inputs
        assert ours[version] == caffe_shape, name
        checked += 1
    return checked


def test_shapes_of_source_package_nets(caffe_models: Path) -> None:
    assert sum(_compare(path) for path in sorted(caffe_models.glob("*/deploy.prototxt"))) > 100


@pytest.mark.parametrize("name", CORPUS_NETS)
def test_shapes_of_corpus_nets(name: str) -> None:
    if not CORPUS.is_dir():
        pytest.skip("shared corpus not present")
    assert _compare(CORPUS / name) > 25
