"""Grad-CAM, guided backpropagation, the deconvnet and the data stream's gradients on the
trained digits net, against pycaffe's own backward and an independent numpy net."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from protoedit.caffe import Session
from protoedit.document import load
from protoedit.explain import CaffeSession, gradients
from protoedit.explain.cam import (
    Deconvnet,
    GradCAM,
    GuidedBackprop,
    GuidedGradCAM,
    upsample,
)
from protoedit.rewrites import LossHead

from . import digits_numpy
from .assets.digits import TrainedDigits
from .helpers import ROOT

EPS32 = float(np.finfo(np.float32).eps)
BLOBS = ["data", "conv1", "pool1", "conv2", "pool2", "ip1", "ip2"]


@pytest.fixture(scope="module")
def worker() -> Iterator[Session]:
    """One warm worker for the module, able to import the reference handler in tests/."""
    preload = ("protoedit.explain.worker", "tests.units_in_caffe")
    with Session(pythonpath=[str(ROOT)], preload=preload) as opened:
        yield opened


@pytest.fixture(scope="module")
def held_out(digits_model: TrainedDigits) -> tuple[Any, Any]:
    split = np.load(digits_model.split)
    return split["images"], split["labels"]


def _close(got: Any, want: Any, terms: int) -> None:
    """Equal to float32 rounding: sums of ``terms`` products, each rounded at most a few
    times, err by ``4 eps32 sqrt(terms)`` of the largest magnitude in play."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    scale = max(float(np.abs(want).max()), 1e-30)
    np.testing.assert_allclose(got, want, rtol=0, atol=4 * EPS32 * np.sqrt(terms) * scale)


@pytest.mark.caffe
def test_blob_gradients_equal_pycaffe_backward_diffs(
    digits_model: TrainedDigits, held_out: tuple[Any, Any], worker: Session, tmp_path: Any
) -> None:
    images, labels = held_out
    inputs = {"data": images[:4], "label": labels[:4].astype(np.float32)}
    ours = gradients(
        digits_model.train_net,
        weights=digits_model.weights,
        inputs=inputs,
        loss="loss",
        blobs="all",
        session=worker,
    )
    names = ["data", "label", "conv1", "pool1", "conv2", "pool2", "ip1", "ip2", "loss"]
    forced = tmp_path / "train.prototxt"  # pycaffe's own net, asked for input gradients too
    forced.write_text("force_backward: true\n" + digits_model.train_net.read_text())
    reference = worker.request(
        "tests.units_in_caffe",
        "backward",
        net=str(forced),
        phase="TEST",
        weights=str(digits_model.weights),
        inputs=inputs,
        names=names,
    )["diffs"]
    inplace = {"conv1", "conv2", "ip1"}
    want = {(f"{n}/before" if n in inplace else n): reference[n] for n in names}
    want.update({f"{n}/after": reference[f"{n}/after"] for n in inplace})
    assert sorted(ours.blobs) == sorted(want)
    for key, value in want.items():
        assert np.abs(value).max() > 0 or key == "label"
        np.testing.assert_array_equal(ours.blobs[key], value)  # the same Caffe, the same order
    flat = ours.flat()
    assert {"blob/conv1/before", "blob/conv1/after", "blob/pool1"} <= set(flat)
    # the after-value is not the before-value: the ReLU's mask lies between them
    assert not np.array_equal(flat["blob/conv1/before"], flat["blob/conv1/after"])
    assert np.array_equal(flat["blob/data"], flat["input/data"])


@pytest.mark.caffe
def test_a_solver_stands_for_its_training_net_in_phase_train(
    digits_model: TrainedDigits, held_out: tuple[Any, Any], worker: Session
) -> None:
    images, labels = held_out
    inputs = {"data": images[:2], "label": labels[:2].astype(np.float32)}
    solver = digits_model.folder / "solver.prototxt"
    ours = gradients(
        solver,
        weights=digits_model.weights,
        inputs=inputs,
        loss="loss",
        blobs=["pool2"],
        session=worker,
    )
    reference = worker.request(
        "tests.units_in_caffe",
        "backward",
        net=str(digits_model.train_net),
        phase="TRAIN",
        weights=str(digits_model.weights),
        inputs=inputs,
        names=["pool2"],
    )["diffs"]
    assert list(ours.blobs) == ["pool2"]
    np.testing.assert_array_equal(ours.blobs["pool2"], reference["pool2"])


def _params(session: CaffeSession) -> dict[str, dict[str, Any]]:
    return session.get_params()


@pytest.mark.caffe
@pytest.mark.parametrize("rule", ["plain", "guided", "deconvnet"])
def test_relu_rules_equal_numpy_layer_by_layer(
    digits_model: TrainedDigits, held_out: tuple[Any, Any], worker: Session, rule: str
) -> None:
    images, labels = held_out
    method = {"plain": GradCAM, "guided": GuidedBackprop, "deconvnet": Deconvnet}[rule]
    options = {"layer": "conv2"} if rule == "plain" else {}
    checked = 0
    for index in range(6):
        logit = int(labels[index])
        with method(
            digits_model.deploy,
            weights=digits_model.weights,
            head=LossHead(kind="logit", channel=logit),
            session=worker,
            **options,
        ) as explained:
            session = explained.session()
            params = _params(session)
            if digits_numpy.near_ties(params, images[index]) > 0:
                continue  # float32 and float64 may pick another maximum or sign there
            answer = session.run(
                {"data": images[index : index + 1]}, param_grads=False, relu=rule, diffs=BLOBS
            )
            reference = digits_numpy.backward(params, images[index], logit, rule)
            assert sorted(answer["diffs"]) == sorted(reference)
            for key, want in reference.items():
                _close(answer["diffs"][key][0], want, 16 * 9 * 4)
            if rule != "plain":
                result = explained.attribute(images[index])
                _close(result.gradient, reference["data"], 16 * 9 * 4)
                np.testing.assert_array_equal(result.map, np.abs(result.gradient).max(axis=0))
            checked += 1
    assert checked >= 4


@pytest.mark.caffe
@pytest.mark.parametrize("plus", [False, True])
def test_gradcam_equals_numpy_from_grad_outputs(
    digits_model: TrainedDigits, held_out: tuple[Any, Any], worker: Session, plus: bool
) -> None:
    images, labels = held_out
    head = LossHead(kind="logit", channel=int(labels[0]))
    grads = gradients(
        digits_model.deploy,
        weights=digits_model.weights,
        inputs=images[:1],
        target="ip2",
        head=head,
        blobs=["conv2"],
        session=worker,
    )
    with CaffeSession(
        digits_model.deploy.read_text(), weights=digits_model.weights, session=worker
    ) as plain:
        activation = plain.run({"data": images[:1]}, backward=False, blobs=("conv2",))
    a = activation["blobs"]["conv2"][0].astype(np.float64)
    g = grads.flat()["blob/conv2/after"][0].astype(np.float64)
    if plus:
        share = g**2 / np.where(g != 0, 2 * g**2 + a.sum(axis=(1, 2))[:, None, None] * g**3, 1)
        alpha = (share * np.maximum(g, 0)).sum(axis=(1, 2))
    else:
        alpha = g.mean(axis=(1, 2))
    want = np.maximum((alpha[:, None, None] * a).sum(axis=0), 0)
    with GradCAM(
        digits_model.deploy,
        weights=digits_model.weights,
        head=head,
        layer="conv2",
        plus=plus,
        session=worker,
    ) as cam:
        result = cam.attribute(images[0])
    assert result.layer == "conv2" and result.layer_map is not None
    assert result.method == ("gradcam++" if plus else "gradcam")
    _close(result.layer_map, want, 32 * 16)
    assert want.max() > 0
    np.testing.assert_allclose(result.map, upsample(result.layer_map, 8, 8), rtol=1e-6)
    np.testing.assert_array_equal(result.gradient, grads.inputs["data"][0])


@pytest.mark.caffe
def test_guided_gradcam_is_the_product(
    digits_model: TrainedDigits, held_out: tuple[Any, Any], worker: Session
) -> None:
    images, labels = held_out
    head = LossHead(kind="logit", channel=int(labels[1]))
    common: dict[str, Any] = {"weights": digits_model.weights, "head": head, "session": worker}
    with GuidedGradCAM(digits_model.deploy, layer="conv1", **common) as both:
        product = both.attribute(images[1])
    with GuidedBackprop(digits_model.deploy, **common) as guided:
        g = guided.attribute(images[1]).gradient
    with GradCAM(digits_model.deploy, layer="conv1", **common) as cam:
        c = cam.attribute(images[1]).map
    np.testing.assert_allclose(product.gradient, g * c[None], rtol=4 * EPS32)
    assert product.method == "guided-gradcam"


def _ink_share(result_map: Any, where: Any) -> float | None:
    positive = np.maximum(np.asarray(result_map, np.float64), 0)
    total = positive.sum()
    return float(positive[where].sum() / total) if total > 0 else None


@pytest.fixture(scope="module")
def conv1_cam_on_ink(
    digits_model: TrainedDigits, held_out: tuple[Any, Any], worker: Session
) -> dict[str, list[float | None]]:
    """Grad-CAM at conv1 of every held-out digit, for its own class: the positive map's share
    on ink pixels (> 0), its share on units whose receptive field holds ink (the summary's
    boxes), and the ink's share of the image (what a uniform map would get)."""
    from protoedit.net.receptive import receptive_field

    images, labels = held_out
    field = receptive_field(load(digits_model.deploy), "conv1")
    out: dict[str, list[float | None]] = {"ink": [], "seen": [], "area": []}
    for digit in range(10):
        head = LossHead(kind="logit", channel=digit)
        common: dict[str, Any] = {"weights": digits_model.weights, "session": worker}
        with GradCAM(digits_model.deploy, head=head, layer="conv1", **common) as cam:
            for index in np.flatnonzero(labels == digit):
                ink = images[index][0] > 0
                result = cam.attribute(images[index])
                assert result.layer_map is not None and result.layer_map.shape == ink.shape
                seen = np.array(
                    [[ink[field.box(y, x).slices].any() for x in range(8)] for y in range(8)]
                )
                out["ink"].append(_ink_share(result.map, ink))
                out["seen"].append(_ink_share(result.layer_map, seen))
                out["area"].append(float(np.mean(ink)))
    return out


@pytest.mark.caffe
def test_gradcam_mass_lies_on_the_ink(
    held_out: tuple[Any, Any], conv1_cam_on_ink: dict[str, list[float | None]]
) -> None:
    """At least halfway from a uniform map to a map wholly on the ink; and nearly all of it
    on units that see ink (off them a unit holds only its bias's share)."""
    shares = [s for s in conv1_cam_on_ink["ink"] if s is not None]
    areas = [
        a
        for a, s in zip(conv1_cam_on_ink["area"], conv1_cam_on_ink["ink"], strict=True)
        if s is not None
    ]
    assert len(shares) >= 0.95 * len(held_out[1])
    mean, area = float(np.mean(shares)), float(np.mean([a for a in areas if a is not None]))
    assert mean >= (1 + area) / 2, (mean, area)
    seen = float(np.mean([s for s in conv1_cam_on_ink["seen"] if s is not None]))
    assert seen >= 0.95, seen


@pytest.mark.caffe
@pytest.mark.xfail(
    strict=True,
    reason="issue 22 asks 80 %; plain Grad-CAM at conv1 puts 77.8 % on the ink over all 359 "
    "held-out digits, 97 % on units whose 3x3 field holds ink: the rest of the mass sits on "
    "the one-pixel ring around the strokes, which those units see (not an upsampling error: "
    "conv1 is 8x8 with unit (y, x) centred on pixel (y, x)); Grad-CAM++: 77.6 %",
)
def test_gradcam_mass_on_ink_reaches_the_issue_s_80_percent(
    held_out: tuple[Any, Any], conv1_cam_on_ink: dict[str, list[float | None]]
) -> None:
    """Measured (2026-12-07): 77.75 % over the 359 held-out digits for the true class's
    logit (the predicted class's: 77.81 %; A and its gradient before relu1: 77.30 %;
    Grad-CAM++, image by image: 77.64 %; conv2: 58.6 %; the net retrained with seeds 2 and 3:
    78.7 % and 78.5 %, with conv1 unbiased: 79.2 %).  A map that gives each conv1 unit the
    ink its 3x3 field holds gets 83.0 % (the ink mask so blurred: 77.8 %): the field's
    one-pixel reach sets the bound, not the map's placement, the class score, the ReLU or
    the training run."""
    shares = [0.0 if s is None else s for s in conv1_cam_on_ink["ink"]]
    assert len(shares) == len(held_out[1])  # every held-out digit, a zero map counting 0
    assert float(np.mean(shares)) >= 0.80


@pytest.mark.caffe
def test_sanity_flags_guided_backprop_and_passes_gradient_and_gradcam(
    digits_model: TrainedDigits, held_out: tuple[Any, Any], worker: Session
) -> None:
    from protoedit.explain import Gradient, sanity

    images, labels = held_out
    digit = 3
    chosen = [images[i] for i in np.flatnonzero(labels == digit)[:5]]
    head = LossHead(kind="logit", channel=digit)
    common: dict[str, Any] = {"weights": digits_model.weights, "head": head, "session": worker}
    reports = {}
    for name, method in (
        ("gradient", Gradient(digits_model.deploy, **common)),
        ("gradcam", GradCAM(digits_model.deploy, layer="conv2", **common)),
        ("guided", GuidedBackprop(digits_model.deploy, **common)),
    ):
        with method:
            original = method.attribute(chosen[0]).map
            reports[name] = sanity(method, chosen, seed=1)
            # the trained weights are back: the same map as before the check
            np.testing.assert_array_equal(method.attribute(chosen[0]).map, original)
    for report in reports.values():
        assert [step.randomised[-1] for step in report.steps] == ["ip2", "ip1", "conv2", "conv1"]
        assert report.top == 2 and len(report.steps[0].per_image) == 5
    assert not reports["gradient"].insensitive and reports["gradient"].correlation < 0.5
    assert not reports["gradcam"].insensitive and reports["gradcam"].correlation < 0.5
    assert reports["guided"].insensitive
    assert "INSENSITIVE" in reports["guided"].lines()[-1]
    assert "passes" in reports["gradient"].lines()[-1]


@pytest.mark.caffe
def test_cli_gradcam_sanity_and_blob_gradients(
    digits_model: TrainedDigits,
    held_out: tuple[Any, Any],
    worker: Session,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from protoedit.cli import main

    images, labels = held_out
    np.save(tmp_path / "x.npy", images[0])
    np.save(tmp_path / "label.npy", labels[:1].astype(np.float32))
    digit = int(labels[0])
    net = ["saliency", str(digits_model.deploy), "--weights", str(digits_model.weights)]
    net += ["--image", str(tmp_path / "x.npy"), "--class", str(digit)]
    assert (
        main([*net, "--method", "gradcam", "--layer", "conv1", "-o", str(tmp_path / "c.png")]) == 0
    )
    with GradCAM(
        digits_model.deploy,
        weights=digits_model.weights,
        head=LossHead(kind="logit", channel=digit),
        layer="conv1",
        session=worker,
    ) as cam:
        np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), cam.attribute(images[0]).map)
    capsys.readouterr()
    assert main([*net, "--method", "guided", "--sanity", "-o", str(tmp_path / "g.png")]) == 1
    out = capsys.readouterr().out
    assert "sanity: randomised ip2: rank correlation" in out
    assert "sanity: guided is INSENSITIVE to the weights" in out
    solver = str(digits_model.folder / "solver.prototxt")
    argv = ["grad", solver, "--weights", str(digits_model.weights), "--loss", "loss"]
    argv += ["--input", f"data={tmp_path / 'x.npy'}", "--input", f"label={tmp_path / 'label.npy'}"]
    assert main([*argv, "--blobs", "conv1,pool2", "-o", str(tmp_path / "g.npz")]) == 0
    keys = set(np.load(tmp_path / "g.npz"))
    assert {"blob/conv1/before", "blob/conv1/after", "blob/pool2", "input/data"} <= keys
    assert not {k for k in keys if k.startswith("blob/")} - {
        "blob/conv1/before",
        "blob/conv1/after",
        "blob/pool2",
    }
    table = capsys.readouterr().out
    assert "conv1  blob, after in-place" in table and "pool2  blob " in table


@pytest.mark.caffe
def test_top9_over_the_digits_equals_numpy_and_patches_lie_in_the_field(
    digits_model: TrainedDigits, worker: Session, tmp_path: Any
) -> None:
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    from protoedit.explain.top_images import TopImagesFinder
    from protoedit.explain.top_pictures import unit_pictures
    from protoedit.net.receptive import receptive_field

    digits = (load_digits().images / 16.0).astype(np.float32)[:, None]
    assert len(digits) == 1797
    with CaffeSession(
        digits_model.deploy.read_text(), weights=digits_model.weights, session=worker
    ) as plain:
        acts = plain.run({"data": digits}, backward=False, blobs=("conv2",))["blobs"]["conv2"]
    states: list[dict[str, Any]] = []
    with TopImagesFinder(
        digits_model.deploy,
        weights=digits_model.weights,
        target="conv2",
        after_inplace=True,  # the deploy net's conv2 blob holds the value after relu2
        session=worker,
    ) as finder:
        result = finder.find(digits, k=9, batch=100, on_batch=states.append)
        resumed = finder.find(digits, k=9, batch=100, resume=states[7])
    flat = acts.reshape(1797, 32, -1)
    field = receptive_field(load(digits_model.deploy), "conv2")  # the summary's numbers
    assert field.size == (8, 8) and field.stride == (2, 2) and field.offset == (-3, -3)
    for unit in range(32):
        best = flat[:, unit].max(axis=1)
        want = np.lexsort((np.arange(1797), -best.astype(np.float64)))[:9]
        assert result.indices[unit].tolist() == want.tolist()
        np.testing.assert_array_equal(result.values[unit], best[want])
        for rank, index in enumerate(want):
            y, x = result.positions[unit, rank]
            assert flat[index, unit, y * 4 + x] == best[index]
            box = result.box(unit, rank)
            assert box is not None
            low = [o + p * s for o, p, s in zip(field.offset, (y, x), field.stride, strict=True)]
            for axis in range(2):
                assert max(low[axis], 0) == box.begin[axis]
                assert box.end[axis] == min(low[axis] + field.size[axis], 8)
    np.testing.assert_array_equal(resumed.indices, result.indices)
    assert len(states) == 18 and states[-1]["seen"] == 1797
    # the field is the truth: outside the box, the unit's gradient on its top image is zero
    unit, rank = 5, 0
    y, x = map(int, result.positions[unit, rank])
    image = digits[int(result.indices[unit, rank])]
    grads = gradients(
        digits_model.deploy,
        weights=digits_model.weights,
        inputs=image,
        target="conv2",
        head=LossHead(kind="unit", channel=unit, position=(y, x)),
        session=worker,
    )
    box = result.box(unit, rank)
    assert box is not None
    inside = np.zeros((8, 8), bool)
    inside[box.slices] = True
    g = grads.inputs["data"][0, 0]
    assert np.abs(g[inside]).max() > 0 and not g[~inside].any()
    written = unit_pictures(result, finder.stream(digits), tmp_path)
    assert len(written) == 1 + 2 * 32


@pytest.mark.caffe
def test_cli_top_images_writes_pictures_and_the_ranking(
    digits_model: TrainedDigits,
    held_out: tuple[Any, Any],
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from PIL import Image

    from protoedit.cli import main

    images, _ = held_out
    folder = tmp_path / "digits"
    folder.mkdir()
    for n in range(12):
        pixels = (images[n, 0] * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"d{n:02d}.png")
    argv = ["top-images", str(digits_model.deploy), "--weights", str(digits_model.weights)]
    argv += ["--target", "pool1", "--images", str(folder), "-k", "3", "--scale", repr(1 / 255)]
    assert main([*argv, "-q", "--batch", "5", "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 16 and out[0].startswith("unit 0: ")
    ranking = json.loads((tmp_path / "out" / "top-images.json").read_text())
    assert ranking["field"] == {"size": [4, 4], "stride": [2, 2], "offset": [-1, -1]}
    assert len(ranking["units"]) == 16 and all(len(u["top"]) == 3 for u in ranking["units"])
    assert len(list((tmp_path / "out").glob("unit-*-patches.png"))) == 16


@pytest.mark.caffe
@pytest.mark.slow  # open_nsfw's ResNet-50 on six photographs at 224 x 224
def test_top_images_of_photographs_on_open_nsfw(
    nsfw_model: Any, caffe_session: Session, tmp_path: Any
) -> None:
    from PIL import Image
    from skimage import data

    from protoedit.explain.preprocess import Preprocess, load_input
    from protoedit.explain.top_images import TopImagesFinder
    from protoedit.explain.top_pictures import unit_pictures

    from .assets.models import NSFW_MEAN

    names = (
        "astronaut",
        "chelsea",
        "coffee",
        "rocket",
        "immunohistochemistry",
        "hubble_deep_field",
    )
    files = []
    for name in names:
        files.append(tmp_path / f"{name}.png")
        Image.fromarray(getattr(data, name)()).save(files[-1])
    pre = Preprocess(mean=NSFW_MEAN)
    with TopImagesFinder(
        nsfw_model.deploy,
        weights=nsfw_model.weights,
        target="relu_stage1_block3",
        preprocess=pre,
        session=caffe_session,
    ) as finder:
        result = finder.find(files, k=3, batch=4)
    blobs = np.concatenate([load_input(f, (1, 3, 224, 224), pre) for f in files])
    with CaffeSession(
        nsfw_model.deploy.read_text(), weights=nsfw_model.weights, session=caffe_session
    ) as plain:
        acts = plain.run({"data": blobs}, backward=False, blobs=("eltwise_stage1_block3",))
    stage = acts["blobs"]["eltwise_stage1_block3"]  # after relu_stage1_block3, in place
    flat = stage.reshape(len(files), stage.shape[1], -1)
    side = int(np.sqrt(flat.shape[2]))
    field = result.receptive
    assert field is not None and field.size == (99, 99) and field.stride == (8, 8)
    for unit in range(0, flat.shape[1], 7):
        best = flat[:, unit].max(axis=1)
        want = np.lexsort((np.arange(len(files)), -best.astype(np.float64)))[:3]
        assert result.indices[unit].tolist() == want.tolist()
        for rank in range(3):
            y, x = map(int, result.positions[unit, rank])
            assert flat[want[rank], unit, y * side + x] == best[want[rank]]
            box = result.box(unit, rank)
            assert box is not None
            for axis, at in enumerate((y, x)):
                start = field.offset[axis] + at * field.stride[axis]
                assert max(start, 0) == box.begin[axis] < box.end[axis]
                assert box.end[axis] == min(start + field.size[axis], 224)
    written = unit_pictures(result, finder.stream(files), tmp_path / "out")
    assert len(written) == 1 + 2 * flat.shape[1]


@pytest.mark.caffe
def test_guided_warns_on_a_net_without_relu(worker: Session) -> None:
    from protoedit.document import loads

    net = loads(
        'layer { name: "data" type: "Input" top: "data" '
        "input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }\n"
        'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" '
        'inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 } } }\n'
    )
    with GuidedBackprop(
        net, weights=None, head=LossHead(kind="logit", channel=1), session=worker
    ) as guided:
        result = guided.attribute(np.ones((1, 4, 4), np.float32))
    assert any("no ReLU layer on the path to 'fc'" in w for w in result.warnings)
    leaky = loads(
        net.dumps() + 'layer { name: "r" type: "ReLU" bottom: "fc" top: "r" '
        "relu_param { negative_slope: 0.1 } }\n"
    )
    head = LossHead(kind="logit", channel=1)
    for method, warned in ((GuidedBackprop, True), (Deconvnet, False)):
        with method(leaky, weights=None, head=head, target="r", session=worker) as explained:
            notes = explained.attribute(np.ones((1, 4, 4), np.float32)).warnings
        assert any("ReLU layer 'r' is leaky" in w for w in notes) == warned
