"""Gradients by layer name on the digits net trained in Caffe: checked three independent ways.

Finite differences (a directional derivative per parameter blob and per input), Euler's
theorem on a bias-free variant (exact up to float32 rounding), and pycaffe's own
``net.layers[i].blobs[k].diff`` after ``net.backward()`` of the unmodified training net.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protoedit import load, loads
from protoedit.caffe import Session
from protoedit.explain import CaffeSession, gradients, prepare
from protoedit.net.layers import layer_type
from protoedit.net.view import NetView
from protoedit.rewrites import LossHead
from protoedit.weights import load as load_weights
from protoedit.weights import save as save_weights
from protoedit.weights import stored_shapes

from .assets.digits import TrainedDigits

pytestmark = pytest.mark.caffe

#: float32's unit roundoff: the relative error of one rounded operation.
U = 2.0**-24
#: Caffe's GradientChecker threshold, for what the step itself leaves (curvature, and the
#: ReLU and max-pooling kinks a perturbation may cross): relative to the larger estimate.
RELATIVE = 1e-2
#: The step, relative to the size of what is perturbed (at least 1): small enough that few
#: kinks lie within it, large enough that float32 rounding (the 1/step term) stays small.
STEP = 1e-3


def _held_out(digits: TrainedDigits, count: int) -> tuple[np.ndarray, np.ndarray]:
    split = np.load(digits.split)
    return split["images"][:count], split["labels"][:count]


def _noisy(x: np.ndarray) -> np.ndarray:
    """``x`` plus seeded noise of 2% of the pixel range.

    A digit's blank background makes exact ties in max pooling (equal inputs, equal outputs)
    where the net has no derivative: Caffe takes one branch, a central difference averages
    both, and they differ by a constant that no step size removes.  Noise breaks the ties.
    """
    noise = np.random.default_rng(5).standard_normal(x.shape).astype(np.float32)
    return x + np.float32(0.02) * noise


def _chain(weight_shapes: list[tuple[int, ...]]) -> int:
    """The longest sum a forward pass forms along the net: every layer's fan-in (plus its
    bias) added up, from the weight shapes (outputs first).

    A float32 sum of n products is off by at most n * U times the sum of their magnitudes
    (the standard worst-case bound); a loss computed through these layers carries at most
    ``_chain * U`` times its scale.
    """
    return sum(int(np.prod(shape[1:])) + 1 for shape in weight_shapes)


def finite_difference_tolerance(
    analytic: float, numeric: float, scale: float, step: float, chain: int
) -> float:
    """How far a central difference may be from the analytic directional derivative.

    Two terms, neither taken from what a machine printed:

    * rounding: each float32 loss evaluation is off by at most ``chain * U * scale`` (see
      :func:`_chain`; ``scale`` is the largest |loss| seen, at least 1), and the central
      difference divides the difference of two such errors by ``2 * step``;
    * the step: as Caffe's GradientChecker, ``RELATIVE`` times the larger of the two values.
    """
    rounding = 2 * chain * U * scale / (2 * step)
    return rounding + RELATIVE * max(abs(analytic), abs(numeric))


def _direction(rng: np.random.Generator, grad: np.ndarray) -> np.ndarray:
    """A seeded random unit direction, tilted towards the analytic gradient.

    Along a purely random direction the derivative of a large blob is about |grad|/sqrt(n),
    which can sink below float32 noise; adding the gradient's own direction keeps the signal
    near |grad| while the random part still probes every entry.
    """
    random = rng.standard_normal(grad.shape)
    direction = random / np.linalg.norm(random)
    norm = np.linalg.norm(grad.astype(np.float64))
    if norm > 0:
        direction = direction + grad / norm
    return direction / np.linalg.norm(direction)


HEADS = [
    pytest.param("ip2", LossHead("logit", 3), id="ip2-logit3"),
    pytest.param("conv2", LossHead("channel", 5), id="conv2-channel5"),
]


@pytest.mark.parametrize(("target", "head"), HEADS)
def test_every_gradient_matches_finite_differences(
    digits_model: TrainedDigits, target: str, head: LossHead, caffe_session: Session
) -> None:
    x = _noisy(_held_out(digits_model, 2)[0])
    result = gradients(
        digits_model.deploy,
        weights=digits_model.weights,
        inputs=x,
        target=target,
        head=head,
        session=caffe_session,
    )
    doc, _ = prepare(digits_model.deploy, target=target, head=head)
    rng = np.random.default_rng(2026)
    checked = []
    with CaffeSession(doc.dumps(), weights=digits_model.weights, session=caffe_session) as session:
        values = session.get_params()
        chain = _chain([roles["weight"].shape for roles in values.values()])

        def loss(inputs: Any) -> float:
            return float(session.run({"data": inputs}, backward=False)["loss"])

        for layer, roles in result.items():
            for role, grad in roles.items():
                theta = values[layer][role].astype(np.float64)
                d = _direction(rng, grad)
                h = STEP * max(float(np.linalg.norm(theta)), 1.0)
                losses = []
                for sign in (1, -1):
                    session.set_params({layer: {role: theta + sign * h * d}})
                    losses.append(loss(x))
                session.set_params({layer: {role: theta}})
                checked.append((f"{layer}/{role}", float(np.sum(grad * d)), losses, h))
        d = _direction(rng, result.inputs["data"])
        h = STEP * max(float(np.linalg.norm(x)), 1.0)
        losses = [loss(x + h * d), loss(x - h * d)]
        checked.append(("input/data", float(np.sum(result.inputs["data"] * d)), losses, h))
    assert len(checked) == len(result.flat())
    for key, analytic, (plus, minus), h in checked:
        numeric = (plus - minus) / (2 * h)
        scale = max(abs(plus), abs(minus), abs(result.loss), 1.0)
        tolerance = finite_difference_tolerance(analytic, numeric, scale, h, chain)
        assert abs(analytic) > tolerance, (key, analytic, tolerance)  # a check, not noise
        assert abs(numeric - analytic) <= tolerance, (key, analytic, numeric, tolerance)


def test_a_session_serves_repeated_requests_alike(
    digits_model: TrainedDigits, caffe_session: Session
) -> None:
    """Caffe adds parameter gradients into their diffs; every request must start from zero."""
    x = _held_out(digits_model, 3)[0]
    doc, _ = prepare(digits_model.deploy, target="ip2", head=LossHead("logit", 7))
    with CaffeSession(doc.dumps(), weights=digits_model.weights, session=caffe_session) as session:
        first = session.run({"data": x})
        inputs_only = session.run({"data": x[:1]}, param_grads=False)
        again = session.run({"data": x})
    assert "params" not in inputs_only and inputs_only["inputs"]["data"].shape == (1, 1, 8, 8)
    assert again["loss"] == first["loss"]
    for layer, roles in first["params"].items():
        for role, grad in roles.items():
            np.testing.assert_array_equal(again["params"][layer][role], grad)
    np.testing.assert_array_equal(again["inputs"]["data"], first["inputs"]["data"])


def _expected_keys(doc: Any) -> set[str]:
    """LAYER/ROLE for every layer with parameters, from the prototxt alone."""
    keys = set()
    for info in NetView(doc).layers:
        if info.type in ("Convolution", "InnerProduct"):
            param = (
                info.param.convolution_param
                if info.type == "Convolution"
                else info.param.inner_product_param
            )
            roles = layer_type(info.type).roles[: 2 if param.bias_term else 1]
            keys |= {f"{info.name}/{role}" for role in roles}
    return keys


def test_keys_are_the_nets_layer_names_and_roles(
    digits_model: TrainedDigits, caffe_session: Session
) -> None:
    x, _ = _held_out(digits_model, 1)
    result = gradients(
        digits_model.deploy,
        weights=digits_model.weights,
        inputs=x,
        target="ip2",
        head=LossHead("logit", 0),
        session=caffe_session,
    )
    doc = load(digits_model.deploy)
    assert set(result.flat()) == _expected_keys(doc) | {"input/data"}
    assert set(result) == {"conv1", "conv2", "ip1", "ip2"}
    stored = {
        layer.name: [blob.shape for blob in layer.blobs]
        for layer in load_weights(digits_model.weights).layers
    }
    for layer, roles in result.items():
        assert [g.shape for g in roles.values()] == stored[layer]
    assert result.inputs["data"].shape == x.shape


def _bias_free(digits: TrainedDigits, tmp_path: Path) -> tuple[Any, Path]:
    """The deploy net with ``bias_term: false`` everywhere, and the trained weights without
    their biases: Convolution / InnerProduct, ReLU and max pooling only."""
    text = digits.deploy.read_text()
    assert text.count('bias_filler { type: "constant" value: 0 }') == 4
    text = text.replace('bias_filler { type: "constant" value: 0 }', "bias_term: false")
    doc = loads(text, path=str(tmp_path / "bias_free.prototxt"))
    model = load_weights(digits.weights)
    for layer in model.layers:
        del layer.blobs[1:]
    path = tmp_path / "bias_free.caffemodel"
    save_weights(model, path)
    return doc, path


def test_euler_theorem_holds_exactly_on_the_bias_free_net(
    digits_model: TrainedDigits, tmp_path: Path, caffe_session: Session
) -> None:
    """f(t x) = t f(x) for t > 0, so sum(x * df/dx) = f(x), up to float32 rounding only.

    The allowance is the rounding bound of the whole computation: ``_chain`` products summed
    per value, each off by at most U relative, over the magnitude sum(|x * df/dx|).  With the
    biases back the identity must fail by far more (the check has teeth).
    """
    doc, weights = _bias_free(digits_model, tmp_path)
    x, labels = _held_out(digits_model, 4)
    chain = _chain([blobs[0][0] for blobs in stored_shapes(weights).values()])
    for item in range(len(x)):
        for cls in (int(labels[item]), (int(labels[item]) + 1) % 10):
            result = gradients(
                doc,
                weights=weights,
                inputs=x[item],
                target="ip2",
                head=LossHead("logit", cls),
                session=caffe_session,
            )
            terms = x[item][None].astype(np.float64) * result.inputs["data"]
            allowance = chain * U * float(np.abs(terms).sum())
            assert abs(float(terms.sum()) - result.loss) <= allowance, (item, cls)
    biased = gradients(
        digits_model.deploy,
        weights=digits_model.weights,
        inputs=x[0],
        target="ip2",
        head=LossHead("logit", int(labels[0])),
        session=caffe_session,
    )
    terms = x[0][None].astype(np.float64) * biased.inputs["data"]
    assert abs(float(terms.sum()) - biased.loss) > 100 * chain * U * float(np.abs(terms).sum())


def test_full_net_loss_equals_pycaffes_own_backward(
    digits_model: TrainedDigits, tmp_path: Path, caffe_session: Session
) -> None:
    """``loss=`` on the training net gives what pycaffe's ``net.backward()`` leaves in every
    ``net.layers[i].blobs[k].diff``: the same float32 operations in the same order."""
    x, labels = _held_out(digits_model, 8)
    wrong = ((labels + 3) % 10).astype(np.float32)  # a large loss, so the gradients are large
    inputs = {"data": x, "label": wrong}
    result = gradients(
        digits_model.train_net,
        weights=digits_model.weights,
        inputs=inputs,
        loss="loss",
        session=caffe_session,
    )
    np.savez(tmp_path / "inputs.npz", **inputs)
    script = Path(__file__).with_name("explain_backward_in_caffe.py")
    subprocess.run(
        [
            sys.executable,
            str(script),
            str(digits_model.train_net),
            str(digits_model.weights),
            str(tmp_path / "inputs.npz"),
            str(tmp_path / "reference.npz"),
        ],
        check=True,
    )
    reference = np.load(tmp_path / "reference.npz")
    ours = {
        f"{layer}/{k}": grad
        for layer, roles in result.items()
        for k, grad in enumerate(roles.values())
    }
    assert set(ours) == set(reference.files) - {"loss"}
    assert result.loss == pytest.approx(float(reference["loss"]), rel=8 * U)
    assert result.loss > 1.0
    for key, grad in ours.items():
        expected = reference[key]
        assert np.abs(expected).max() > 0, key
        scale = float(np.abs(expected).max())
        np.testing.assert_allclose(grad, expected, rtol=0, atol=8 * U * scale, err_msg=key)
