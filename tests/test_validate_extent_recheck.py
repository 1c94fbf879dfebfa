"""A failed verdict at the reduced extent is checked again at the declared one, which gives it:
the rule on a stand-in worker, and a search of the corpus's aux nets for verdicts that differ
between the two extents (real Caffe)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from protoedit import load
from protoedit.caffe.worker import Reply
from protoedit.rewrites import LossHead, aux
from protoedit.validate import validate_files
from protoedit.validate.pool import run_one

SQUEEZENET = "forresti__SqueezeNet__SqueezeNet_v1.1__deploy.prototxt"
#: One net of each family (plain, Inception, residual, depthwise, fire modules).
NETS = [
    "BVLC__caffe__models__bvlc_alexnet__deploy.prototxt",
    "BVLC__caffe__models__bvlc_googlenet__deploy.prototxt",
    "KaimingHe__deep-residual-networks__prototxt__ResNet-50-deploy.prototxt",
    "shicai__MobileNet-Caffe__mobilenet_v2_deploy.prototxt",
    SQUEEZENET,
]
TARGETS_PER_NET = 3


class _Worker:
    """Answers validate requests from a table keyed by the extent asked for."""

    def __init__(self, answers: dict[str, dict[str, Any]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def call(self, _handler: str, _name: str, fields: dict[str, Any], **_: Any) -> Reply:
        self.asked.append(fields["extent"])
        return Reply(answer=self.answers[fields["extent"]], seconds=1.0)


_SMALL = {"extent": {"data": [15, 15]}, "declared_extent": {"data": [227, 227]}}
_FULL = {"extent": {"data": [227, 227]}, "declared_extent": {"data": [227, 227]}}
_ZERO = {"status": "failed", "reason": "input gradient is zero for data: a dead path"}
_VALID = {"status": "valid", "reason": "forward and backward ran"}


def test_a_failure_at_the_reduced_extent_runs_again_at_the_declared_one() -> None:
    worker = _Worker({"smallest": _SMALL | _ZERO, "declared": _FULL | _VALID})
    outcome = run_one(worker, {"extent": "smallest"}, timeout=5, allow_python_layers=False)  # type: ignore[arg-type]
    assert worker.asked == ["smallest", "declared"]
    assert outcome.result is not None and outcome.result["status"] == "valid"
    assert outcome.rechecked == _SMALL | _ZERO
    assert outcome.seconds == 2.0  # both runs counted


@pytest.mark.parametrize(
    "answer",
    [_SMALL | _VALID, _FULL | _ZERO, _SMALL | _ZERO | {"cause": "no_loss"}],
    ids=["valid at the reduced extent", "failed at the declared extent", "a known cause"],
)
def test_no_second_run_when_the_verdict_already_stands(answer: dict[str, Any]) -> None:
    worker = _Worker({"smallest": answer})
    outcome = run_one(worker, {"extent": "smallest"}, timeout=5, allow_python_layers=False)  # type: ignore[arg-type]
    assert worker.asked == ["smallest"] and outcome.rechecked is None


def _targets(path: Path) -> list[tuple[str, int]]:
    """TARGETS_PER_NET Convolution layers spread over the net (not the first), a channel each."""
    layers = [layer for layer in load(path).message.layer if layer.type == "Convolution"]
    picked = [layers[len(layers) * (k + 1) // (TARGETS_PER_NET + 1)] for k in range(3)]
    return [(layer.name, 5 % layer.convolution_param.num_output) for layer in picked]


@pytest.mark.caffe
def test_no_aux_net_of_the_corpus_gets_a_verdict_the_declared_extent_does_not_give(
    corpus: Path, tmp_path: Path
) -> None:
    cases = [(name, target, k) for name in NETS for target, k in _targets(corpus / name)]
    cases.append((SQUEEZENET, "fire4/concat", 5))  # the new user's net: zero at 15x15
    nets = []
    for index, (name, target, channel) in enumerate(cases):
        doc = load(corpus / name)
        aux(doc, target, LossHead("channel", channel))
        path = tmp_path / f"{index}.prototxt"
        path.write_text(doc.dumps())
        nets.append(path)
    options: dict[str, Any] = {"jobs": 2, "batch": 1, "random_weights": True}
    small = validate_files(nets, extent="smallest", **options)
    full = validate_files(nets, extent="declared", **options)
    differ = [
        (case, least.status, whole.status)
        for case, least, whole in zip(cases, small, full, strict=True)
        if (least.status, least.cause) != (whole.status, whole.cause)
    ]
    assert not differ
    squeeze = small[-1]
    assert squeeze.status == "valid" and squeeze.verdict_extent == "declared"
    assert squeeze.extent_note.startswith("declared, which gave the verdict: at the smallest ")
    assert "(data 15x15) the input gradient is zero" in squeeze.extent_note
    assert sum(r.verdict_extent == "smallest" for r in small) >= len(cases) // 2  # it does shrink
