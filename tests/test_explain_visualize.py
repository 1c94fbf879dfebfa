"""``visualize``: activation maximisation on the trained digits net, the head rewrite, the
regularisers, the outputs and bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from protoedit import load, loads
from protoedit.cli import main
from protoedit.errors import InputError
from protoedit.explain import CaffeSession
from protoedit.explain.ascent import objectives, regularise, unit_mask
from protoedit.explain.maximisation import visualize
from protoedit.explain.objectives import Unit, parse_channels
from protoedit.explain.preprocess import Preprocess
from protoedit.explain.settings import PRESETS, Settings, StepSettings
from protoedit.explain.vis_net import MASK, PRE_MASK, visualization_net
from protoedit.net.view import NetView
from protoedit.rewrites import truncate

from .assets.digits import TrainedDigits
from .helpers import one_error_line

#: The digits net reads pixels scaled to [0, 1]: a 0-255 image times 1/255.
DIGITS = Preprocess(scale=1 / 255)
F32 = float(np.finfo(np.float32).eps)


# --- no Caffe needed ------------------------------------------------------------------------


def test_presets_are_the_four_sets_of_the_paper() -> None:
    table = {
        "yosinski1": (0.0, 0.5, 4, 50, 0, 500),
        "yosinski2": (0.3, 0.0, 0, 20, 0, 750),
        "yosinski3": (1e-4, 1.0, 4, 0, 0, 1000),
        "yosinski4": (0.0, 0.5, 4, 0, 90, 1000),
    }
    for name, values in table.items():
        p = PRESETS[name]
        got = (
            p.decay,
            p.blur_radius,
            p.blur_every,
            p.norm_percentile,
            p.contribution_percentile,
            p.steps,
        )
        assert got == values, name


def test_parse_channels() -> None:
    assert parse_channels("0-3,8") == [0, 1, 2, 3, 8]
    assert parse_channels("5") == [5]
    for bad in ("3-1", "a", "1,,2", "-2"):
        with pytest.raises(InputError):
            parse_channels(bad)


def test_mask_rows_measure_each_elements_own_unit() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=(3, 5, 4, 6)).astype(np.float32)
    units = [((1.0, 4, None),), ((1.0, 0, None),), ((1.0, 4, None),)]
    got = objectives(values, unit_mask(values.shape, units))
    want = [values[0, 4].mean(), values[1, 0].mean(), values[2, 4].mean()]
    np.testing.assert_allclose(got, want, rtol=10 * F32 * values.size, atol=0)
    terms = [((1.0, 1, (2, 3)),), ((1.0, 2, None),), ((1.0, 3, (0, 5)),)]
    at = objectives(values, unit_mask(values.shape, terms))
    np.testing.assert_allclose(
        at,
        [values[0, 1, 2, 3], values[1, 2].mean(), values[2, 3, 0, 5]],
        rtol=10 * F32 * values.size,
    )


def _worker_settings(**extra: float) -> StepSettings:
    base = StepSettings.of(
        Settings(blur_every=0), 1.0, [-104.0, -117.0, -123.0], [151.0, 138.0, 132.0]
    )
    return replace(base, **extra)  # type: ignore[arg-type]


def test_clipping_to_the_pixel_range_after_the_mean() -> None:
    x = np.random.default_rng(0).normal(0, 500, size=(2, 3, 5, 5)).astype(np.float32)
    regularise(x, np.zeros_like(x), 0, _worker_settings())
    mean = np.array([104.0, 117.0, 123.0]).reshape(1, 3, 1, 1)
    pixels = x + mean
    assert pixels.min() >= 0 and pixels.max() <= 255
    assert (np.isclose(pixels, 0) | np.isclose(pixels, 255)).mean() > 0.5  # it did clip


def test_small_norm_and_small_contribution_pixels_become_the_mean() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 20, size=(1, 3, 10, 10)).astype(np.float32)
    norms = np.sqrt((x * x).sum(axis=1))[0]
    y = x.copy()
    regularise(y, np.zeros_like(y), 0, _worker_settings(norm_percentile=50))
    zeroed = (y[0] == 0).all(axis=0)
    assert zeroed.sum() == 50
    assert norms[zeroed].max() < norms[~zeroed].min()
    g = rng.normal(size=x.shape).astype(np.float32)
    z = x.copy()
    regularise(z, g, 0, _worker_settings(contribution_percentile=90))
    contribution = np.abs((x * g).sum(axis=1))[0]
    kept = ~(z[0] == 0).all(axis=0)
    assert kept.sum() == 10
    assert contribution[kept].min() > contribution[~kept].max()


def test_the_head_is_a_mask_input_times_the_target(digits_fixture_deploy: Path) -> None:
    doc, head, report = visualization_net(digits_fixture_deploy, "relu1")
    view = NetView(doc)
    by_name = {info.name: info for info in view.layers}
    masks = by_name["protoedit_vis_masks"]
    assert [w.blob for w in masks.writes] == [MASK, PRE_MASK]
    assert [list(s.dim) for s in masks.param.input_param.shape] == [[1, 16], [1, 16]]
    # The ReLU writes a new blob, so the pre-activation (conv1) is still readable.
    assert head.pre == "conv1" and head.post != "conv1"
    assert [w.blob for w in by_name["relu1"].writes] == [head.post]
    product = by_name["protoedit_vis_product"]
    assert [r.blob for r in product.reads] == [head.post, MASK]
    assert product.type == "Scale" and product.param.scale_param.axis == 0
    assert by_name["protoedit_vis_loss"].param.loss_weight == [1.0]
    assert "ip1" not in by_name  # truncated at the target
    # Only the input's gradient is used: no layer learns, so backward skips weight gradients.
    assert [spec.lr_mult for spec in by_name["conv1"].param.param] == [0.0, 0.0]
    assert doc.message.force_backward
    assert any("one objective per batch element" in line for line in report.lines())


@pytest.fixture
def digits_fixture_deploy() -> Path:
    from .assets.digits import FIXTURES

    return FIXTURES / "deploy.prototxt"


def test_a_target_without_backward_is_refused() -> None:
    doc = loads(
        'layer { name: "data" type: "Input" top: "data" '
        "input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }\n"
        'layer { name: "am" type: "ArgMax" bottom: "data" top: "am" }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "am" top: "ip" '
        "inner_product_param { num_output: 3 } }\n"
    )
    with pytest.raises(InputError, match="cannot run backward"):
        visualization_net(doc, "ip")


# --- Caffe: the digits net ------------------------------------------------------------------


def _real_logits(model: TrainedDigits) -> np.ndarray:
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    images = (load_digits().images / 16.0).astype(np.float32)[:, None]
    assert len(images) == 1797
    with CaffeSession(load(model.deploy).dumps(), weights=model.weights) as session:
        logits: np.ndarray = session.run({"data": images}, backward=False, blobs=("ip2",))["blobs"][
            "ip2"
        ]
    return logits


@pytest.mark.caffe
def test_digits_every_class_beats_every_real_digit(
    digits_model: TrainedDigits, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``visualize --class K``: the net calls the image K (p >= 0.9), and its logit K is above
    the highest logit K of all 1,797 real digits."""
    real = _real_logits(digits_model)
    images = []
    for k in range(10):
        grid = tmp_path / f"class{k}.png"
        argv = [
            "visualize",
            str(digits_model.deploy),
            "--weights",
            str(digits_model.weights),
            "--class",
            str(k),
            "--scale",
            repr(1 / 255),
            "-q",
            "-o",
            str(grid),
        ]
        assert main(argv) == 0, capsys.readouterr().err
        summary = json.loads(grid.with_suffix(".json").read_text())
        images.append(np.load(tmp_path / summary["units"][0]["array"]))
        assert summary["units"][0]["label"] == f"ip2[{k}]"
    x = np.stack(images)
    assert x.shape == (10, 1, 8, 8) and x.min() >= 0 and x.max() <= 1
    with CaffeSession(load(digits_model.deploy).dumps(), weights=digits_model.weights) as s:
        out = s.run({"data": x}, backward=False, blobs=("ip2", "prob"))["blobs"]
    for k in range(10):
        assert out["prob"][k, k] >= 0.9, (k, out["prob"][k])
        assert out["ip2"][k, k] > real[:, k].max(), (k, out["ip2"][k, k], real[:, k].max())


@pytest.mark.caffe
def test_units_in_one_batch_are_independent_and_seeded(digits_model: TrainedDigits) -> None:
    """Each element follows its own unit: a batch of two gives what two single runs give, and
    the same seed gives the same images."""
    kwargs = dict(
        weights=digits_model.weights,
        target="conv2",
        preprocess=DIGITS,
        progress=False,
        after_inplace=True,
    )
    settings = Settings(steps=3)
    both = visualize(digits_model.deploy, objectives=[5, 20], settings=settings, **kwargs)
    alone = [
        visualize(digits_model.deploy, objectives=[c], settings=settings, **kwargs) for c in (5, 20)
    ]
    again = visualize(digits_model.deploy, objectives=[5, 20], settings=settings, **kwargs)
    for n in range(2):
        single = alone[n].results[0]
        # A few steps of size step/255 each: batch GEMMs round differently, nothing more.
        np.testing.assert_allclose(both.results[n].image, single.image, atol=1e-4, rtol=0)
        np.testing.assert_array_equal(both.results[n].image, again.results[n].image)
    assert not np.allclose(both.results[0].image, both.results[1].image)


@pytest.mark.caffe
def test_a_dead_unit_is_optimised_through_its_pre_activation(
    digits_model: TrainedDigits,
) -> None:
    """From a black start, conv1 channels with a negative bias are zero everywhere after the
    ReLU; they still rise, and the summary says they were dead."""
    with CaffeSession(load(digits_model.deploy).dumps(), weights=digits_model.weights) as s:
        bias = s.get_params({"conv1": ["bias"]})["conv1"]["bias"]
    dead = [int(c) for c in np.flatnonzero(bias < 0)]
    assert dead, "the trained conv1 has no channel with a negative bias"
    result = visualize(
        digits_model.deploy,
        weights=digits_model.weights,
        target="relu1",
        objectives=dead,
        start=np.zeros((1, 8, 8), np.float32),
        settings=Settings(steps=60),
        preprocess=DIGITS,
        progress=False,
    )
    for unit in result.results:
        assert unit.start == 0.0 and unit.dead_at_start, unit.label
        assert unit.end > 0.0, unit.label


@pytest.mark.caffe
def test_outputs_next_to_the_grid(digits_model: TrainedDigits, tmp_path: Path) -> None:
    """The grid, each unit's PNG and .npy (fed back, it gives the reported activation), and
    the JSON summary."""
    from PIL import Image

    result = visualize(
        digits_model.deploy,
        weights=digits_model.weights,
        target="conv2",
        after_inplace=True,  # relu2's output, as the truncated net below measures
        objectives=[1, 30],
        settings=Settings(steps=20),
        preprocess=DIGITS,
        progress=False,
    )
    written = result.save(tmp_path / "grid.png")
    assert written[0] == tmp_path / "grid.png"
    assert Image.open(written[0]).size[0] > 2 * 96
    summary = json.loads((tmp_path / "grid.json").read_text())
    assert [u["channel"] for u in summary["units"]] == [1, 30]
    doc = load(digits_model.deploy)
    truncate(doc, "relu2", after_inplace=False)
    arrays = [np.load(tmp_path / f"grid_c{c}.npy") for c in (1, 30)]
    assert (tmp_path / "grid_c30.png").is_file()
    with CaffeSession(doc.dumps(), weights=digits_model.weights) as session:
        out = session.run({"data": np.stack(arrays)}, backward=False, blobs=("conv2",))
    for n, entry in enumerate(summary["units"]):
        assert entry["steps"] == 20
        assert entry["activation_end"] > entry["activation_start"]
        measured = float(out["blobs"]["conv2"][n, entry["channel"]].mean())
        assert measured == pytest.approx(entry["activation_end"], rel=1e-5, abs=1e-6)


@pytest.mark.caffe
def test_start_image_is_where_the_ascent_begins(digits_model: TrainedDigits) -> None:
    split = np.load(digits_model.split)
    digit = split["images"][0]
    doc = load(digits_model.deploy)
    truncate(doc, "ip2")
    with CaffeSession(doc.dumps(), weights=digits_model.weights) as session:
        logits = session.run({"data": digit[None]}, backward=False, blobs=("ip2",))["blobs"]
    result = visualize(
        digits_model.deploy,
        weights=digits_model.weights,
        target="ip2",
        objectives=[Unit(3)],
        start=digit,
        settings=Settings(steps=5),
        preprocess=DIGITS,
        progress=False,
    )
    assert result.results[0].start == pytest.approx(float(logits["ip2"][0, 3]), rel=1e-5)


@pytest.mark.caffe
def test_bad_input_is_one_line(
    digits_model: TrainedDigits, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "g.png")
    base = ["visualize", str(digits_model.deploy), "--weights", str(digits_model.weights)]
    line = one_error_line(capsys, [*base, "--target", "conv2", "--channels", "30-40", "-o", out])
    assert "channel 32 is out of range" in line and "32 channels" in line
    assert "--channels" in line
    line = one_error_line(capsys, [*base, "--target", "nope", "-o", out])
    assert "nope" in line
    line = one_error_line(capsys, [*base, "--target", "conv2", "--preset", "x", "-o", out])
    assert "no preset 'x'" in line and "yosinski4" in line
    train = ["visualize", str(digits_model.train_net), "--weights", str(digits_model.weights)]
    line = one_error_line(capsys, [*train, "--target", "loss", "-o", out])
    assert "cannot run backward" in line
    missing = ["visualize", str(digits_model.deploy), "--weights", str(tmp_path / "no.caffemodel")]
    assert "no.caffemodel" in one_error_line(capsys, [*missing, "--target", "conv1", "-o", out])
    assert not Path(out).exists()


#: A small net the default preset tiles (its image is 64 x 64): a strided 5x5 convolution
#: and a 3x3 one, 16 channels to measure.
SEAMS_NET = """
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 1 dim: 3 dim: 64 dim: 64 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 5 stride: 2 pad: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
  convolution_param { num_output: 16 kernel_size: 3 pad: 1 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
"""


@pytest.mark.caffe
def test_tiles_of_the_default_preset_leave_no_seam(caffe_session: object, tmp_path: Path) -> None:
    """Report item 18: the default preset optimises a 32 x 32 tile, then the image repeated
    from it; the tile was optimised unrolled, so its repeats met at seams.  Measured: the
    mean |difference| of neighbouring pixels across the seam (column and row 31 | 32) against
    the interior columns and rows of the same parity (the stride-2 pattern alternates), over
    16 channels x 2 axes.  The seam's mean must lie within three standard errors of the
    interior's (a column drawn from the interior would, at that seed, 99.7 % of the time);
    the unrolled tile put it 11 standard errors below."""
    from protoedit.weights import Weights, save

    rng = np.random.default_rng(0)
    net, weights = tmp_path / "seams.prototxt", tmp_path / "seams.caffemodel"
    net.write_text(SEAMS_NET)
    arrays = {
        "conv1": [rng.normal(0, 0.05, (8, 3, 5, 5)), np.zeros(8)],
        "conv2": [rng.normal(0, 0.1, (16, 8, 3, 3)), np.zeros(16)],
    }
    save(
        Weights.from_arrays({k: [a.astype(np.float32) for a in v] for k, v in arrays.items()}),
        weights,
    )
    result = visualize(
        net,
        weights=weights,
        target="conv2",
        objectives=range(16),
        preprocess=DIGITS,
        progress=False,
        session=caffe_session,  # type: ignore[arg-type]
    )
    assert result.settings.tile == 2
    seam, interior, spread = [], [], []
    for unit in result.results:
        x = unit.image.astype(np.float64)
        for axis, other in ((-1, (0, 1)), (-2, (0, 2))):
            step = np.abs(np.diff(x, axis=axis)).mean(axis=other)  # step[j]: j | j + 1
            same = [j for j in range(3, len(step) - 3, 2) if abs(j - 31) > 2]  # off the edges
            seam.append(step[31])
            interior.append(step[same].mean())
            spread.append(step[same].std(ddof=1))
    error = float(np.sqrt(np.mean(np.square(spread)) / len(seam)))
    assert abs(float(np.mean(seam)) - float(np.mean(interior))) <= 3 * error, (
        np.mean(seam),
        np.mean(interior),
        error,
    )
