"""The five real nets shipped in Caffe's source package load and run in Caffe.

Without ``force_backward`` Caffe sends no gradient to the input, even with a loss; with it
(and a loss head) the gradient arrives.  This pins down the behaviour the project exists for.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from protoedit import load
from protoedit.rewrites import LossHead, add_loss, force_backward
from protoedit.validate import validate_net
from protoedit.validate.report import ValidationReport
from protoedit.validate.runner import validate_files

pytestmark = pytest.mark.caffe

MODELS = [
    "bvlc_alexnet",
    "bvlc_reference_caffenet",
    "bvlc_googlenet",
    "bvlc_reference_rcnn_ilsvrc13",
    "finetune_flickr_style",
]
#: The last blob before the classifier's softmax (a loss on a Softmax output has zero gradient).
LOGITS = {
    "bvlc_alexnet": ("fc8", 1000),
    "bvlc_reference_caffenet": ("fc8", 1000),
    "bvlc_googlenet": ("loss3/classifier", 1000),
    "bvlc_reference_rcnn_ilsvrc13": ("fc-rcnn", 200),
    "finetune_flickr_style": ("fc8_flickr", 20),
}


#: Caffe runs the nets of a module's tests at once, on two workers that import it once each;
#: each test reads its own net's report.
WORKERS = 2


@pytest.fixture(scope="module")
def deploy_reports(caffe_models: Path) -> dict[str, ValidationReport]:
    nets = [caffe_models / model / "deploy.prototxt" for model in MODELS]
    return dict(zip(MODELS, validate_files(nets, jobs=WORKERS), strict=True))


@pytest.mark.parametrize("model", MODELS)
def test_deploy_net_runs_and_input_gradient_is_zero(
    deploy_reports: dict[str, ValidationReport], model: str
) -> None:
    report = deploy_reports[model]
    assert report.status == "failed", report.reason
    assert report.blobs, "forward ran, so every blob has a shape"
    logits, classes = LOGITS[model]
    assert report.blobs[logits][1] == classes
    [grad] = report.input_gradients
    assert grad.finite and not grad.nonzero
    assert "force_backward" in report.reason


def _with_head(source: Path, blob: str, with_force_backward: bool, out: Path) -> Path:
    doc = load(source)
    if with_force_backward:
        force_backward(doc)
    add_loss(doc, blob, LossHead("channel", 1))
    doc.save(out)
    return out


def test_zero_parameters_are_named_as_the_cause(caffe_models: Path, tmp_path: Path) -> None:
    # A deploy net without weights has all-zero parameters: no gradient even with a loss head.
    source = caffe_models / "bvlc_alexnet" / "deploy.prototxt"
    report = validate_net(_with_head(source, "fc8", True, tmp_path / "aux.prototxt"))
    assert report.status == "failed"
    assert "are all zero: no weights were given" in report.reason
    assert report.cause == "zero_weights"  # a cause the CLI turns into a hint


@pytest.fixture(scope="module")
def head_reports(
    caffe_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, bool], ValidationReport]:
    """Each net with a loss head on its logits, with and without ``force_backward``, run with
    random weights."""
    folder = tmp_path_factory.mktemp("heads")
    cases = [(model, with_fb) for model in MODELS for with_fb in (False, True)]
    nets = [
        _with_head(
            caffe_models / model / "deploy.prototxt",
            LOGITS[model][0],
            with_fb,
            folder / f"{model}-{with_fb}.prototxt",
        )
        for model, with_fb in cases
    ]
    reports = validate_files(nets, jobs=WORKERS, random_weights=True)
    return dict(zip(cases, reports, strict=True))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("with_force_backward", [False, True])
def test_loss_head_needs_force_backward(
    head_reports: dict[tuple[str, bool], ValidationReport], model: str, with_force_backward: bool
) -> None:
    logits, classes = LOGITS[model]
    report = head_reports[model, with_force_backward]
    [grad] = report.input_gradients
    assert list(report.losses) == ["protoedit_aux_loss"]
    assert report.blobs[logits][1] == classes
    if with_force_backward:
        assert report.status == "valid", report.reason
        assert grad.ok and grad.norm > 0
    else:
        assert report.status == "failed" and not grad.nonzero
        assert "force_backward" in report.reason and "loss_weight" not in report.reason
