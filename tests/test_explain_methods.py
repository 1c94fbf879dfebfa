"""The explain API as objects: methods prepared once and reused, options refused where they do
not apply, SmoothGrad over integrated gradients, objectives that combine, the input panel."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from protoedit import load, loads
from protoedit.errors import InputError
from protoedit.explain import (
    CaffeSession,
    Gradient,
    Gradients,
    IntegratedGradients,
    LayerGradients,
    Objective,
    Preprocess,
    Saliency,
    Settings,
    SmoothGrad,
    Unit,
    Visualizer,
    direction,
    gradients,
    prepare,
    saliency,
    visualize,
)
from protoedit.explain.ascent import objectives, unit_mask
from protoedit.explain.objectives import as_head, as_objective, check_objective
from protoedit.explain.vis_net import visualization_net
from protoedit.rewrites import LossHead, aux, truncate

from .assets.digits import FIXTURES, TrainedDigits

DEPLOY = FIXTURES / "deploy.prototxt"
NEVER = Path("never-read.caffemodel")
F32_RTOL = 1e-5
DIGITS = Preprocess(scale=1 / 255)


def _digit() -> npt.NDArray[np.float32]:
    """A "1"-like stroke on an 8 x 8 grid, in the digits net's [0, 1] range."""
    image = np.zeros((1, 8, 8), np.float32)
    image[0, 1:7, 4] = 1.0
    image[0, 2, 3] = 0.6
    image[0, 6, 2:6] = 0.8
    return image


def _input_panel(picture: npt.NDArray[np.uint8], side: int) -> npt.NDArray[np.float64]:
    """The first panel of a saliency picture, shrunk back to ``side`` x ``side`` pixels."""
    by = picture.shape[0] // side
    panel = picture[:, : side * by].astype(np.float64).mean(axis=2)
    return panel[::by, ::by]


# --- without Caffe -----------------------------------------------------------------------


def test_the_input_panel_is_the_input_the_net_saw() -> None:
    """An array in the net's [0, 1] range is stretched to black..white, not shown as 0-1 of
    255 (which was all black)."""
    digit = _digit()
    result = Saliency(
        method="gradient",
        map=np.ones((8, 8), np.float32),
        gradient=np.ones((1, 8, 8), np.float32),
        input=digit,
        value=0.0,
    )
    panel = _input_panel(result.picture(), 8)
    assert panel.max() >= 250 and panel.min() <= 5
    assert np.corrcoef(panel.ravel(), digit.ravel())[0, 1] > 0.99


def test_options_of_another_method_are_refused() -> None:
    common: dict[str, Any] = dict(weights=NEVER, image=_digit(), head=LossHead("logit", 1))
    for method, option, value in (
        ("gradient", "steps", 10),
        ("gradient", "samples", 5),
        ("gradient", "baseline", _digit()),
        ("integrated", "samples", 5),
        ("integrated", "noise", 0.1),
        ("smoothgrad", "steps", 10),
        ("smoothgrad", "baseline", _digit()),
    ):
        with pytest.raises(InputError, match=f"{option} applies to the .* method only"):
            saliency(DEPLOY, method=method, **{option: value}, **common)


def test_method_objects_take_only_their_own_options() -> None:
    with pytest.raises(TypeError):
        Gradient(DEPLOY, weights=NEVER, head=LossHead("logit", 1), steps=10)  # type: ignore[call-arg]
    gradient = Gradient(DEPLOY, weights=NEVER, head=LossHead("logit", 1))
    with pytest.raises(InputError, match="samples must be at least 1"):
        SmoothGrad(gradient, samples=0)
    with pytest.raises(InputError, match="SmoothGrad smooths"):
        SmoothGrad(SmoothGrad(gradient))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="steps must be at least 1"):
        IntegratedGradients(DEPLOY, weights=NEVER, head=LossHead("logit", 1), steps=0)


def test_a_method_is_prepared_once_and_pickles_without_its_worker() -> None:
    method = IntegratedGradients(DEPLOY, weights=NEVER, head=Unit(3), target="conv2", steps=8)
    assert method.head == LossHead("channel", 3) and method.target == "conv2"
    assert "protoedit_aux_loss" in method.net_text
    again = pickle.loads(pickle.dumps(method))
    assert again.net_text == method.net_text and again._session is None
    assert again.doc is None and again.inputs == {"data": (1, 1, 8, 8)}


def test_a_unit_is_a_loss_head() -> None:
    assert as_head(Unit(4)) == LossHead("channel", 4)
    assert as_head(Unit(4, (1, 2))) == LossHead("unit", 4, position=(1, 2))
    with pytest.raises(InputError, match="a sum of units is an objective for visualize"):
        as_head(Unit(1) + Unit(2))  # type: ignore[arg-type]


def test_objectives_combine_linearly() -> None:
    combined = Unit(3) - 0.5 * Unit(7, (1, 2)) + direction([0.0, 2.0])
    assert isinstance(combined, Objective)
    assert combined.terms == ((1.0, 3, None), (-0.5, 7, (1, 2)), (2.0, 1, None))
    assert combined.label("conv") == "conv[3] - 0.5 conv[7,1,2] + 2 conv[1]"
    assert combined.tag() == "c3-0.5c7_1_2+2c1"
    assert as_objective(5) == Unit(5)
    with pytest.raises(InputError):
        as_objective("5")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="channel 9 is out of range"):
        check_objective(Unit(1) + Unit(9), "conv", 8, (1, 8, 4, 4))
    with pytest.raises(InputError, match="position"):
        check_objective(Unit(1, (4, 0)), "conv", 8, (1, 8, 4, 4))
    with pytest.raises(InputError, match="no units"):
        check_objective(direction([0.0, 0.0]), "conv", 8, (1, 8, 4, 4))


def test_a_mask_row_is_the_weighted_sum_of_its_units() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(size=(2, 4, 3, 5)).astype(np.float32)
    rows = [(Unit(1) - 0.5 * Unit(3)).terms, (2.0 * Unit(0, (2, 4)) + Unit(2)).terms]
    got = objectives(values, unit_mask(values.shape, rows))
    want = [
        values[0, 1].mean() - 0.5 * values[0, 3].mean(),
        2.0 * values[1, 0, 2, 4] + values[1, 2].mean(),
    ]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_one_backward_preparation_one_error() -> None:
    """aux, the gradient's own-loss net and the visualisation net refuse a layer that
    aborts in backward on the target's path with the same located message."""
    text = (
        'layer { name: "data" type: "Input" top: "data" '
        "input_param { shape { dim: 1 dim: 4 } } }\n"
        'layer { name: "argmax" type: "ArgMax" bottom: "data" top: "am" }\n'
        'layer { name: "fc" type: "InnerProduct" bottom: "am" top: "fc" '
        "inner_product_param { num_output: 3 } }\n"
        'layer { name: "loss" type: "EuclideanLoss" bottom: "fc" bottom: "data" top: "loss" }\n'
    )
    wanted = r"<string>:2:1: layer 'argmax' \(ArgMax\) cannot run backward, and the {} depends"
    with pytest.raises(InputError, match=wanted.format("target")):
        aux(loads(text), "fc", LossHead())
    with pytest.raises(InputError, match=wanted.format("target")):
        visualization_net(loads(text), "fc")
    with pytest.raises(InputError, match=wanted.format("loss")):
        prepare(loads(text), loss="loss")


def test_every_save_returns_the_paths_written(tmp_path: Path) -> None:
    grads = Gradients(params={"ip": {"weight": np.ones((2, 3), np.float32)}}, inputs={}, loss=0.0)
    assert grads.save(tmp_path / "g.npz") == [tmp_path / "g.npz"]
    assert sorted(np.load(tmp_path / "g.npz")) == ["ip/weight"]


def test_a_loss_takes_no_head() -> None:
    train = FIXTURES / "train.prototxt"
    with pytest.raises(InputError, match="head applies to a target"):
        prepare(train, loss="loss", head=LossHead())


# --- on the trained digits net -----------------------------------------------------------


def _held_out(model: TrainedDigits) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    split = np.load(model.split)
    return split["images"], split["labels"].astype(np.int64)


@pytest.mark.caffe
def test_the_input_panel_of_a_held_out_digit_is_that_digit(digits_model: TrainedDigits) -> None:
    """What ``make demo`` draws: integrated gradients of a held-out digit given as an array
    in [0, 1]; its input panel was all black."""
    images, labels = _held_out(digits_model)
    result = saliency(
        digits_model.deploy,
        weights=digits_model.weights,
        image=images[0],
        head=LossHead("logit", int(labels[0])),
        method="integrated",
        steps=8,
    )
    panel = _input_panel(result.picture(), 8)
    assert panel.max() >= 250
    assert np.corrcoef(panel.ravel(), images[0].ravel())[0, 1] > 0.99


@pytest.mark.caffe
def test_one_method_object_serves_many_images_in_one_worker(
    digits_model: TrainedDigits, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, _ = _held_out(digits_model)
    opened: list[str] = []
    init = CaffeSession.__init__

    def counting(self: CaffeSession, net_text: str, **kwargs: Any) -> None:
        opened.append(net_text)
        init(self, net_text, **kwargs)

    monkeypatch.setattr(CaffeSession, "__init__", counting)
    head = LossHead("logit", 4)
    with Gradient(digits_model.deploy, weights=digits_model.weights, head=head) as method:
        maps = [method.attribute(image) for image in images[:3]]
    assert len(opened) == 1
    for image, result in zip(images[:3], maps, strict=True):
        alone = saliency(digits_model.deploy, weights=digits_model.weights, image=image, head=head)
        np.testing.assert_array_equal(result.map, alone.map)
    opened.clear()
    with LayerGradients(
        digits_model.deploy, weights=digits_model.weights, target="ip2", head=head
    ) as layers:
        first, second = layers.compute(images[0]), layers.compute(images[1])
        assert layers.doc is not None
    assert len(opened) == 1 and first.loss != second.loss


@pytest.mark.caffe
def test_a_session_handed_in_is_used_and_left_open(digits_model: TrainedDigits) -> None:
    images, _ = _held_out(digits_model)
    method = Gradient(digits_model.deploy, weights=digits_model.weights, head=Unit(2), target="ip2")
    with CaffeSession(method.net_text, weights=digits_model.weights) as session:
        shared = Gradient(
            digits_model.deploy,
            weights=digits_model.weights,
            head=Unit(2),
            target="ip2",
            session=session,
        )
        with shared:
            first = shared.attribute(images[0])
        grads = gradients(
            digits_model.deploy,
            weights=digits_model.weights,
            inputs=images[0],
            target="ip2",
            head=Unit(2),
            session=session,
        )
        assert session.run({"data": images[:1]}, backward=False)["loss"] is not None  # open
    np.testing.assert_allclose(first.gradient, grads.inputs["data"][0], rtol=F32_RTOL)


@pytest.mark.caffe
def test_smoothgrad_over_integrated_gradients(digits_model: TrainedDigits) -> None:
    """Without noise it is integrated gradients; with noise its attributions still add up to
    the mean f(copy) - f(baseline), and they differ from the noiseless ones."""
    images, labels = _held_out(digits_model)
    head = LossHead("logit", int(labels[2]))
    with IntegratedGradients(
        digits_model.deploy, weights=digits_model.weights, head=head, steps=32
    ) as integrated:
        plain = integrated.attribute(images[2])
        still = SmoothGrad(integrated, samples=3, noise=0.0).attribute(images[2])
        noisy = SmoothGrad(integrated, samples=6, noise=0.1, seed=3).attribute(images[2])
    assert still.method == noisy.method == "smoothgrad(integrated)"
    assert plain.attributions is not None and still.attributions is not None
    scale = float(np.abs(plain.attributions).max())
    np.testing.assert_allclose(still.attributions, plain.attributions, atol=F32_RTOL * scale)
    assert still.value == pytest.approx(plain.value, rel=F32_RTOL)
    assert noisy.attributions is not None and noisy.baseline_value is not None
    assert not np.allclose(noisy.attributions, plain.attributions, rtol=0.01)
    gap = noisy.completeness_gap
    assert noisy.path_value is not None and gap is not None
    assert abs(gap) <= 0.05 * abs(noisy.path_value - noisy.baseline_value)


@pytest.mark.caffe
def test_a_combined_objective_is_its_weighted_sum(
    digits_model: TrainedDigits, tmp_path: Path
) -> None:
    """The reported value of ``conv2[1] - 0.5 conv2[30]`` is that sum, measured by a plain
    forward pass of the image it found; one Visualizer runs two lists."""
    with Visualizer(
        digits_model.deploy,
        weights=digits_model.weights,
        target="conv2",
        preprocess=DIGITS,
        settings=Settings(steps=20),
    ) as visualizer:
        combined = visualizer.run([Unit(1) - 0.5 * Unit(30)], progress=False)
        single = visualizer.run([1], progress=False)
    result = combined.results[0]
    assert result.label == "conv2[1] - 0.5 conv2[30]" and result.end > result.start
    doc = load(digits_model.deploy)
    truncate(doc, "conv2")
    with CaffeSession(doc.dumps(), weights=digits_model.weights) as session:
        out = session.run({"data": result.image[None]}, backward=False, blobs=("conv2",))
    conv2 = out["blobs"]["conv2"][0].astype(np.float64)
    measured = conv2[1].mean() - 0.5 * conv2[30].mean()
    assert measured == pytest.approx(result.end, rel=1e-5, abs=1e-6)
    assert single.results[0].label == "conv2[1]"
    written = combined.save(tmp_path / "grid.png")
    assert (tmp_path / "grid_c1-0.5c30.png") in written
    direct = visualize(
        digits_model.deploy,
        weights=digits_model.weights,
        target="conv2",
        objectives=[Unit(1)],
        preprocess=DIGITS,
        settings=combined.settings,
        progress=False,
    )
    np.testing.assert_allclose(direct.results[0].image, single.results[0].image, atol=1e-5)
