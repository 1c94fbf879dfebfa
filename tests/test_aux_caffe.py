"""Proof in Caffe: the aux net's loss is the target activation, and gradients reach the input.

Each net runs in a warm Caffe worker that loads tests/caffe_proof.py as a handler (one Caffe
import for the module); results are collected into a report printed at the end of the test run
(counts per net: tried, passed, refused with reason).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protoedit import load
from protoedit.caffe import Session
from protoedit.caffe.build import models_dir

from .helpers import FIXTURES, ROOT, report_lines

pytestmark = pytest.mark.caffe
#: The longest a proof of one net may take (ResNet-50 with finite differences is well inside).
PROOF_TIMEOUT = 900.0
TARGETS_PER_NET = 10

SOURCE_NETS = [
    "bvlc_alexnet",
    "bvlc_reference_caffenet",
    "bvlc_googlenet",
    "bvlc_reference_rcnn_ilsvrc13",
    "finetune_flickr_style",
]
CORPUS_NETS = [
    "KaimingHe__deep-residual-networks__prototxt__ResNet-50-deploy.prototxt",
    "forresti__SqueezeNet__SqueezeNet_v1.1__deploy.prototxt",
    "shicai__MobileNet-Caffe__mobilenet_deploy.prototxt",
    "BVLC__caffe__examples__mnist__lenet.prototxt",
    "soeaver__caffe-model__cls__inception__deploy_inception-v3.prototxt",
    "shicai__MobileNet-Caffe__mobilenet_v2_deploy.prototxt",
]


def _targets(path: Path) -> list[tuple[str, int]]:
    """Up to TARGETS_PER_NET Convolution/InnerProduct layers, evenly spread, with a channel."""
    net = load(path).message
    layers = [layer for layer in net.layer if layer.type in ("Convolution", "InnerProduct")]
    if len(layers) > TARGETS_PER_NET:
        step = (len(layers) - 1) / (TARGETS_PER_NET - 1)
        layers = [layers[round(i * step)] for i in range(TARGETS_PER_NET)]
    picked = []
    for number, layer in enumerate(layers):
        outputs = (
            layer.convolution_param.num_output
            if layer.type == "Convolution"
            else layer.inner_product_param.num_output
        )
        picked.append((layer.name, (3 * number + 1) % outputs))
    return picked


@pytest.fixture(scope="module")
def proof_worker() -> Iterator[Session]:
    """One warm worker for every proof of the module (no memory limit: ResNet-50 at batch 2)."""
    with Session(pythonpath=[str(ROOT)], request_timeout=PROOF_TIMEOUT) as opened:
        yield opened


def _prove(name: str, path: Path, worker: Session, **extra: object) -> list[dict[str, object]]:
    request = {"net": str(path), "seed": 0, "targets": _targets(path), **extra}
    results: list[dict[str, object]] = worker.request("tests.caffe_proof", "prove", **request)[
        "results"
    ]
    refused = [f"{r['target']}: {r['reason']}" for r in results if r["status"] == "refused"]
    passed = sum(r["status"] == "passed" for r in results)
    report_lines(
        "aux net proof in Caffe",
        [f"{name}: {len(results)} targets tried, {passed} passed, {len(refused)} refused"]
        + [f"    refused {reason}" for reason in refused],
    )
    return results


def _check(results: list[dict[str, object]]) -> None:
    assert results
    for result in results:
        assert result["status"] == "passed", result


@pytest.mark.parametrize("model", SOURCE_NETS)
def test_aux_head_measures_the_target_on_source_package_nets(
    model: str, caffe_models: Path, proof_worker: Session
) -> None:
    _check(_prove(model, caffe_models / model / "deploy.prototxt", proof_worker))


def _label(name: str) -> str:
    """A corpus file's name as repository folder/file, for the report."""
    return "/".join(name.split("__")[-2:])


@pytest.mark.parametrize("name", CORPUS_NETS)
def test_aux_head_measures_the_target_on_corpus_nets(
    name: str, corpus: Path, proof_worker: Session
) -> None:
    _check(_prove(_label(name), corpus / name, proof_worker))


@pytest.mark.parametrize(
    "name",
    [
        "KaimingHe__deep-residual-networks__prototxt__ResNet-50-deploy.prototxt",
        "BVLC__caffe__models__bvlc_googlenet__deploy.prototxt",
    ],
)
def test_add_loss_on_the_whole_net_reads_the_pre_activation(
    name: str, corpus: Path, proof_worker: Session
) -> None:
    # Targets followed by in-place BatchNorm/Scale/ReLU (ResNet) or ReLU (GoogLeNet): the
    # in-place chain is moved to a new blob, so the head sees the layer's own output.
    label = f"{_label(name)} (add-loss, whole net)"
    _check(_prove(label, corpus / name, proof_worker, rewrite="add_loss"))


@pytest.mark.parametrize(
    "name",
    [
        "KaimingHe__deep-residual-networks__prototxt__ResNet-50-deploy.prototxt",
        "BVLC__caffe__models__bvlc_googlenet__deploy.prototxt",
    ],
)
def test_unit_head_measures_one_neuron(name: str, corpus: Path, proof_worker: Session) -> None:
    _check(_prove(f"{_label(name)} (one unit, centre)", corpus / name, proof_worker, head="unit"))


#: Each float32 loss evaluation is taken to be within this many ulps of its exact value: a
#: forward pass rounds in every sum, and a sum of terms up to ROUNDING_ULPS times larger than
#: its result loses that many ulps of the result.
ROUNDING_ULPS = 16


def central_difference_tolerance(probe: dict[str, Any]) -> float:
    """How far a central difference may lie from the exact directional derivative, in float32.

    Rounding: the two losses are each off by up to ``ROUNDING_ULPS`` ulps of the loss scale,
    and their difference is divided by ``2h``: ``ROUNDING_ULPS * ulp(L) / h``.  Truncation:
    the central difference at step ``h`` is off by ``h**2 / 6`` times the third derivative,
    the one at ``2h`` by four times that, so ``|N(2h) - N(h)|`` (three times the term) bounds
    it; it also carries the measured rounding of both.  Nothing here depends on the CPU or
    BLAS that computed the losses.
    """
    ulp = float(np.spacing(np.float32(probe["loss_scale"])))
    rounding = ROUNDING_ULPS * ulp / probe["step"]
    return rounding + abs(probe["numeric_2h"] - probe["numeric"])


def _agrees(probe: dict[str, Any]) -> bool:
    return abs(probe["numeric"] - probe["analytic"]) <= central_difference_tolerance(probe)


def _finite_differences(
    label: str, fixture: str, worker: Session, steps: list[float]
) -> list[dict[str, Any]]:
    """Aux heads on a fixture net, each with central-difference probes (see caffe_proof)."""
    results = _prove(label, FIXTURES / fixture, worker, finite_differences=steps, batch=1)
    _check(results)
    return results


def _along_gradient_is_sharp(probe: dict[str, Any], within: float) -> None:
    # Along grad/|grad| the signal is |grad| itself: there the check must have teeth.
    assert probe["direction"] == "gradient"
    assert central_difference_tolerance(probe) <= within * abs(probe["analytic"]), probe


def test_input_gradient_matches_finite_differences_on_a_smooth_net(proof_worker: Session) -> None:
    results = _finite_differences(
        "smooth fixture (finite differences)", "smooth_deploy.prototxt", proof_worker, [0.05]
    )
    for result in results:
        probes = result["finite_differences"]
        _along_gradient_is_sharp(probes[0], 1e-2)
        for probe in probes:
            assert _agrees(probe), (result["target"], probe)


def test_input_gradient_matches_finite_differences_away_from_kinks(
    proof_worker: Session,
) -> None:
    # ReLU and max pooling are piecewise linear.  For each direction the largest step whose
    # four points share one bit-identical input gradient stays inside one linear piece (no
    # kink crossed): there the difference may only be off by rounding.
    steps = [1e-2, 3e-3, 1e-3, 3e-4]
    results = _finite_differences(
        "lenet fixture (finite differences)", "lenet_deploy.prototxt", proof_worker, steps
    )
    for result in results:
        by_direction: dict[str, list[dict[str, Any]]] = {}
        for probe in result["finite_differences"]:
            by_direction.setdefault(probe["direction"], []).append(probe)
        inside = {
            name: next(p for p in probes if p["constant"])
            for name, probes in by_direction.items()
            if any(p["constant"] for p in probes)
        }
        assert "gradient" in inside, result["target"]
        assert len(inside) >= (len(by_direction) + 1) // 2, (result["target"], sorted(inside))
        _along_gradient_is_sharp(inside["gradient"], 5e-2)  # kinks force small steps
        for probe in inside.values():
            assert _agrees(probe), (result["target"], probe)


__all__ = ["models_dir"]
