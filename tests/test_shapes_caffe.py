"""Static shape inference agrees with the shapes Caffe computes, blob by blob."""

from __future__ import annotations

from pathlib import Path

import pytest

from protoedit import load
from protoedit.net import INPUT, NetView
from protoedit.net.shapes import infer_shapes
from protoedit.validate.runner import validate_files

from .helpers import CORPUS

pytestmark = pytest.mark.caffe
CORPUS_NETS = [
    "KaimingHe__deep-residual-networks__prototxt__ResNet-50-deploy.prototxt",
    "forresti__SqueezeNet__SqueezeNet_v1.1__deploy.prototxt",
    "shicai__MobileNet-Caffe__mobilenet_v2_deploy.prototxt",
    "soeaver__caffe-model__cls__inception__deploy_inception-v3.prototxt",
    "shelhamer__fcn.berkeleyvision.org__voc-fcn8s__deploy.prototxt",  # Deconvolution, Crop
]


@pytest.fixture(scope="module")
def caffe_shapes(caffe_models: Path) -> dict[Path, dict[str, list[int]]]:
    """Every net of the tests below built in Caffe at once, on two workers that import it once
    each: the blob shapes by net file."""
    nets = sorted(caffe_models.glob("*/deploy.prototxt"))
    if CORPUS.is_dir():
        nets += [CORPUS / name for name in CORPUS_NETS]
    reports = validate_files(nets, jobs=2, memory_limit=16 * 2**30)
    for report in reports:
        assert report.blobs, report.reason
    return {net: report.blobs for net, report in zip(nets, reports, strict=True)}


def _compare(path: Path, caffe_shapes: dict[Path, dict[str, list[int]]]) -> int:
    view = NetView(load(path))
    ours = infer_shapes(view)
    checked = 0
    for name, caffe_shape in caffe_shapes[path].items():
        version = view.final.get(name)
        if version is None or version.producer == INPUT:
            continue  # Caffe's Split copies, and header inputs
        assert ours[version] == caffe_shape, name
        checked += 1
    return checked


def test_shapes_of_source_package_nets(
    caffe_models: Path, caffe_shapes: dict[Path, dict[str, list[int]]]
) -> None:
    nets = sorted(caffe_models.glob("*/deploy.prototxt"))
    assert sum(_compare(path, caffe_shapes) for path in nets) > 100


@pytest.mark.parametrize("name", CORPUS_NETS)
def test_shapes_of_corpus_nets(name: str, caffe_shapes: dict[Path, dict[str, list[int]]]) -> None:
    if not CORPUS.is_dir():
        pytest.skip("shared corpus not present")
    assert _compare(CORPUS / name, caffe_shapes) > 25
