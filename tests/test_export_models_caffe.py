"""Export and check, blob by blob against Caffe, one net per family: corpus nets with
calibrated random weights (small inputs where the net allows), nets written for these
tests where the corpus has none (DenseNet, ShuffleNet; a small FCN beside the corpus's
FCN-8s, for the fast loop), and the trained
digits and open_nsfw nets on real inputs.  One Caffe worker serves the module."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protoedit import load
from protoedit.caffe import Session, session
from protoedit.caffe.build import caffe_proto_path
from protoedit.export import CheckReport, check, export

from .helpers import CORPUS, FIXTURES, corpus_dir, report_lines

pytestmark = pytest.mark.caffe


def _proto() -> str:
    return str(caffe_proto_path())


@pytest.fixture(scope="module")
def reference() -> Iterator[Session]:
    """One warm Caffe worker for the module (no memory limit: VGG's and AlexNet's weights)."""
    with session() as opened:
        yield opened


def _table(name: str, report: CheckReport, seconds: float) -> None:
    runs = ", ".join(
        f"{run.name}: {'skipped' if run.skipped else 'ok' if run.ok else 'FAILED'}"
        + (f" ({len(run.blobs)} blobs)" if run.blobs else "")
        for run in report.runs
    )
    report_lines(
        "export --check on model families",
        [f"{name}: {'OK' if report.ok else 'FAILED'} in {seconds:.1f} s; {runs}"],
    )


def _check(path: Path, reference: Session, proto: str | None = None, **options: Any) -> CheckReport:
    started = time.monotonic()
    report = check(load(path, proto), session=reference, **options)
    _table(path.name, report, time.monotonic() - started)
    assert report.ok, "\n".join(report.lines())
    compared = [run for run in report.runs if not run.skipped]
    assert compared and all(len(run.blobs) > 2 for run in compared)
    return report


CORPUS_NETS = [
    pytest.param("BVLC__caffe__examples__mnist__lenet.prototxt", {}, id="lenet"),
    pytest.param(
        "forresti__SqueezeNet__SqueezeNet_v1.1__deploy.prototxt",
        {"input_shape": [1, 3, 64, 64]},
        id="squeezenet",
    ),
    pytest.param(
        "shicai__MobileNet-Caffe__mobilenet_deploy.prototxt",
        {"input_shape": [1, 3, 64, 64]},
        id="mobilenet-v1",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "shicai__MobileNet-Caffe__mobilenet_v2_deploy.prototxt",
        {"input_shape": [1, 3, 64, 64]},
        id="mobilenet-v2",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "BVLC__caffe__models__bvlc_googlenet__deploy.prototxt",
        {},
        id="googlenet",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "soeaver__caffe-model__cls__inception__deploy_inception-v3.prototxt",
        {"input_shape": [1, 3, 139, 139]},
        id="inception-v3",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "KaimingHe__deep-residual-networks__prototxt__ResNet-50-deploy.prototxt",
        {},
        id="resnet-50",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "BVLC__caffe__models__bvlc_alexnet__deploy.prototxt",
        {"input_shape": [1, 3, 67, 67]},
        id="alexnet",
        marks=pytest.mark.slow,
    ),
    pytest.param(  # 134M parameters: the cost is the weights, so the input is small
        "shelhamer__fcn.berkeleyvision.org__voc-fcn8s__deploy.prototxt",
        {"input_shape": [1, 3, 64, 64]},
        id="fcn-8s",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "ethereon__netscope__presets__vgg-16.prototxt",
        {"input_shape": [1, 3, 32, 32]},
        id="vgg-16-legacy-v1",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize(("name", "options"), CORPUS_NETS)
def test_corpus_net(name: str, options: dict[str, Any], reference: Session) -> None:
    _check(corpus_dir(CORPUS) / name, reference, **options)


@pytest.mark.slow
def test_ssd_up_to_its_detection_head(reference: Session) -> None:
    path = corpus_dir(CORPUS) / "chuanqi305__MobileNet-SSD__voc__MobileNetSSD_deploy.prototxt"
    report = _check(path, reference, _proto(), until="detection_out", input_shape=[1, 3, 160, 160])
    blobs = {b.blob for b in report.runs[0].blobs}
    # PriorBox (a constant), Permute, Flatten, Concat and the class scores' Reshape/Softmax
    assert {"mbox_priorbox", "mbox_conf_flatten", "mbox_loc", "conv11_mbox_loc_perm"} <= blobs


@pytest.mark.parametrize("name", ["densenet", "fcn"])
def test_family_written_for_the_tests(name: str, reference: Session) -> None:
    _check(FIXTURES / "export" / f"{name}.prototxt", reference)


def test_shufflenet(reference: Session) -> None:
    report = _check(FIXTURES / "export" / "shufflenet.prototxt", reference, _proto())
    odd = next(run for run in report.runs if run.name == "odd size")
    assert "shuffle/split" in odd.skipped  # its Reshape fixes the height and width


def test_digits_net_on_real_inputs(reference: Session, digits_model: Any) -> None:
    images = np.load(digits_model.split)["images"][:8].astype(np.float32)
    report = _check(
        digits_model.deploy, reference, weights=digits_model.weights, inputs={"data": images}
    )
    given = next(run for run in report.runs if run.name == "given inputs")
    assert given.shapes["data"][0] == 8


@pytest.mark.slow
def test_open_nsfw_on_photos(reference: Session, nsfw_model: Any, tmp_path: Path) -> None:
    from PIL import Image
    from skimage import data

    from protoedit.explain import Preprocess

    photos = []
    for name in ("astronaut", "coffee"):
        photos.append(tmp_path / f"{name}.png")
        Image.fromarray(getattr(data, name)()).save(photos[-1])
    report = _check(
        nsfw_model.deploy,
        reference,
        weights=nsfw_model.weights,
        images=photos,
        preprocess=Preprocess(mean=nsfw_model.mean),
        odd_size=False,
    )
    assert any(run.name == "given inputs" and run.ok for run in report.runs)


def test_a_net_caffe_cannot_load_is_exported_and_the_check_says_why(reference: Session) -> None:
    from protoedit import loads
    from protoedit.export import to_onnx

    # BVLC's round_mode: the bundled Caffe's schema has a bool ceil_mode in its place.
    text = (
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 '
        'dim: 7 dim: 7 } } }\nlayer { name: "pool" type: "Pooling" bottom: "data" top: "pool" '
        "pooling_param { pool: MAX kernel_size: 2 stride: 2 round_mode: FLOOR } }\n"
    )
    model = to_onnx(loads(text))
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim][1:] == [2, 3, 3]
    report = check(loads(text), session=reference)
    assert not report.ok
    assert report.reference_error
    assert "could not run" in report.lines()[0]


def test_fork_and_element_wise_layers(reference: Session) -> None:
    report = _check(FIXTURES / "export" / "forks.prototxt", reference, _proto())
    compared = {b.blob for b in report.runs[0].blobs}
    assert {"relu6", "norm", "up", "perm", "prior", "argmax", "scale2"} <= compared


def test_recurrent_lstm(reference: Session) -> None:
    from protoedit.export.mapping import MAPPINGS, Layer, Mapping

    path = FIXTURES / "export" / "lstm.prototxt"
    frames = np.random.default_rng(3).standard_normal([5, 2, 3, 4, 4]).astype(np.float32)
    cont = np.ones([5, 2], dtype=np.float32)
    cont[0] = cont[3, 1] = 0  # sequences start at t = 0, and again at t = 3 in sample 1
    report = _check(path, reference, inputs={"frames": frames, "cont": cont})
    assert "lstm" in {b.blob for b in report.runs[0].blobs}
    weights = export(load(path)).weights  # given: no calibration run of the wrong mapping
    original = MAPPINGS["LSTM"]

    def without_cont(layer: Layer) -> list[str]:  # ONNX's LSTM: no sequence restarts
        layer.inputs[1] = layer.graph.const(np.ones(layer.shapes[1]), "ones")
        return original.emit(layer)

    MAPPINGS["LSTM"] = Mapping(without_cont, original.params, original.shape, init=original.init)
    try:
        wrong = check(
            load(path), weights, session=reference, inputs={"frames": frames, "cont": cont}
        )
    finally:
        MAPPINGS["LSTM"] = original
    found = wrong.first_divergence
    assert found is not None and found[1].blob == "lstm"
