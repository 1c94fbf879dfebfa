"""Saliency maps: the methods against the gradients they are built from, completeness of
integrated gradients on the trained digits net, batching, pictures, and bad input."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from protoedit.cli import main
from protoedit.errors import InputError
from protoedit.explain import CaffeSession, Preprocess, gradients, saliency
from protoedit.explain.saliency_maps import (
    DEFAULT_CHUNK,
    DEFAULT_NOISE,
    DEFAULT_SAMPLES,
    DEFAULT_STEPS,
    METHODS,
    black_baseline,
    logits_target,
)
from protoedit.explain.session import CaffeRunError
from protoedit.picture import DIVERGING, SEQUENTIAL, colours, panels
from protoedit.rewrites import LossHead

from .assets.digits import FIXTURES, TrainedDigits
from .helpers import one_error_line

DEPLOY = FIXTURES / "deploy.prototxt"
#: float32 has 24 bits of mantissa; through a few layers of sums of ~100 terms, results of
#: the same computation in another batch size (another BLAS blocking) differ by ~1e-6 relative.
F32_RTOL = 1e-5


def _held_out(model: TrainedDigits) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    split = np.load(model.split)
    return split["images"], split["labels"].astype(np.int64)


def _logits(model: TrainedDigits, images: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The trained net's class scores by a plain forward pass of the deploy net."""
    with CaffeSession(model.deploy.read_text(), weights=model.weights) as session:
        answer = session.run({"data": images}, backward=False, blobs=("ip2",))
    logits: npt.NDArray[np.float32] = answer["blobs"]["ip2"]
    return logits


def _close(actual: npt.ArrayLike, expected: npt.ArrayLike) -> None:
    """Equal up to float32 rounding, relative to the largest magnitude."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(actual, expected, rtol=F32_RTOL, atol=F32_RTOL * scale)


# --- without Caffe ----------------------------------------------------------------------


def test_black_baseline_is_minus_mean_times_scale_not_zero() -> None:
    pre = Preprocess(mean=(104.0, 117.0, 123.0), scale=0.017)
    black = black_baseline((3, 5, 4), pre)
    assert black.shape == (3, 5, 4)
    for channel, mean in enumerate(pre.mean or ()):
        np.testing.assert_allclose(black[channel], -mean * 0.017, rtol=1e-6)
    assert not np.any(black == 0)  # a zero blob would be the mean image, not black
    np.testing.assert_array_equal(black_baseline((1, 2, 2), Preprocess()), np.zeros((1, 2, 2)))


def test_colours_sequential_for_magnitudes_diverging_for_signed() -> None:
    from matplotlib import colormaps

    magnitudes = np.linspace(0.0, 1.0, 100).reshape(10, 10)
    rgb, strength = colours(magnitudes)
    np.testing.assert_allclose(rgb[-1, -1], colormaps[SEQUENTIAL](1.0)[:3])
    np.testing.assert_allclose(rgb[0, 0], colormaps[SEQUENTIAL](0.0)[:3])
    assert strength[0, 0] == 0 and strength[-1, -1] == 1
    signed = magnitudes - 0.5
    rgb, _ = colours(signed)
    np.testing.assert_allclose(rgb[-1, -1], colormaps[DIVERGING](1.0)[:3])
    np.testing.assert_allclose(rgb[0, 0], colormaps[DIVERGING](0.0)[:3])


def test_panels_enlarge_small_inputs_and_leave_weak_pixels_showing_the_image() -> None:
    image = np.full((8, 8, 1), 200, dtype=np.uint8)
    values = np.zeros((8, 8))
    values[2, 3] = 1.0
    picture = panels(image, values)
    factor = picture.shape[0] // 8
    assert picture.shape[0] >= 256 and picture.shape[0] % 8 == 0
    assert picture.shape[1] > 3 * 8 * factor  # three panels and two gaps
    third = picture[:, -8 * factor :]  # the overlay
    weak = third[0, 0]  # a zero in the map: the (dimmed) image alone
    assert weak[0] == weak[1] == weak[2] == round(0.6 * 200)
    strong = third[2 * factor, 3 * factor].astype(int)
    assert abs(strong - weak.astype(int)).max() > 50


def test_help_states_the_library_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["saliency", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option, value in (
        ("noisy copies", DEFAULT_SAMPLES),
        ("range", DEFAULT_NOISE),
        ("midpoint-rule steps", DEFAULT_STEPS),
        ("forward/backward", DEFAULT_CHUNK),
    ):
        assert f"{option} (default {value:g})" in text
    assert "{" + ",".join(METHODS) + "}" in text


def test_logits_target_steps_back_over_the_final_softmax_or_loss(tmp_path: Path) -> None:
    assert logits_target(DEPLOY) == "ip2"
    assert logits_target(FIXTURES / "train.prototxt") == "ip2"  # SoftmaxWithLoss reads ip2
    two_heads = tmp_path / "two_heads.prototxt"
    extra = 'layer { name: "ip3" type: "InnerProduct" bottom: "ip1" top: "ip3" '
    extra += "inner_product_param { num_output: 2 } }\n"
    two_heads.write_text(DEPLOY.read_text() + extra)
    with pytest.raises(InputError, match="candidates: 'ip2', 'ip3'"):
        logits_target(two_heads)


# --- bad input: one line, exit 2 --------------------------------------------------------


def _argv(image: Path, tmp_path: Path, *extra: str) -> list[str]:
    weights = tmp_path / "never-read.caffemodel"
    out = str(tmp_path / "map.png")
    return [
        "saliency",
        str(DEPLOY),
        "--weights",
        str(weights),
        "--image",
        str(image),
        *extra,
        "-o",
        out,
    ]


def _png(path: Path, width: int, height: int) -> Path:
    Image.fromarray(np.zeros((height, width), dtype=np.uint8)).save(path)
    return path


def test_undecodable_image(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    line = one_error_line(capsys, _argv(image, tmp_path, "--class", "1"))
    assert f"{image}: cannot decode image" in line


def test_class_out_of_range(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    image = _png(tmp_path / "digit.png", 8, 8)
    line = one_error_line(capsys, _argv(image, tmp_path, "--class", "10"))
    assert "class 10 is out of range: 'ip2' has 10 there (--class)" in line


def test_baseline_of_another_size(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    image = _png(tmp_path / "digit.png", 16, 12)
    baseline = _png(tmp_path / "base.png", 12, 16)
    argv = _argv(image, tmp_path, "--class", "1", "--method", "integrated")
    line = one_error_line(capsys, [*argv, "--baseline", str(baseline)])
    assert f"{baseline}: the baseline is 12 x 16 pixels, the image 16 x 12" in line


def test_baseline_array_of_the_wrong_shape(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    image = _png(tmp_path / "digit.png", 8, 8)
    baseline = tmp_path / "base.npy"
    np.save(baseline, np.zeros((1, 7, 8), dtype=np.float32))
    argv = _argv(image, tmp_path, "--class", "1", "--method", "integrated")
    line = one_error_line(capsys, [*argv, "--baseline", str(baseline)])
    assert f"{baseline}: the baseline has shape [1, 7, 8]; the image is 1 x 8 x 8" in line


def test_no_head(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    image = _png(tmp_path / "digit.png", 8, 8)
    line = one_error_line(capsys, _argv(image, tmp_path))
    assert "give --class K, or --target LAYER" in line


def test_output_must_be_png(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    image = _png(tmp_path / "digit.png", 8, 8)
    argv = _argv(image, tmp_path, "--class", "1")
    line = one_error_line(capsys, [*argv[:-1], str(tmp_path / "map.jpg")])
    assert "a .png file" in line


# --- on the trained digits net ----------------------------------------------------------


@pytest.mark.caffe
def test_a_killed_session_says_so_and_still_closes(digits_model: TrainedDigits) -> None:
    images, _ = _held_out(digits_model)
    session = CaffeSession(digits_model.deploy.read_text(), weights=digits_model.weights)
    try:
        assert session.run({"data": images[:1]}, backward=False)["loss"] is not None
        pid = session.pid or 0
        session.kill()
        with pytest.raises(CaffeRunError, match="died with SIGKILL during run"):
            session.run({"data": images[:1]}, backward=False)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # reaped: not even a zombie is left
    finally:
        session.close()
    session.kill()  # closed: nothing to do
    with pytest.raises(CaffeRunError, match="closed"):
        session.run({"data": images[:1]}, backward=False)


@pytest.mark.caffe
def test_gradient_saliency_is_max_over_channels_of_abs_input_gradient(
    digits_model: TrainedDigits,
) -> None:
    images, labels = _held_out(digits_model)
    for index, cls in ((0, int(labels[0])), (1, 4), (2, 9)):
        head = LossHead("logit", cls)
        result = saliency(
            digits_model.deploy, weights=digits_model.weights, image=images[index], head=head
        )
        grads = gradients(
            digits_model.deploy,
            weights=digits_model.weights,
            inputs=images[index],
            target="ip2",
            head=head,
        )
        expected = grads.inputs["data"][0]
        _close(result.gradient, expected)
        _close(result.map, np.abs(expected).max(axis=0))
        assert result.value == pytest.approx(grads.loss, rel=F32_RTOL)
        assert result.target == "ip2" and result.requests == 1
        assert result.map.shape == (8, 8) and float(result.map.max()) > 0


@pytest.mark.caffe
@pytest.mark.parametrize(
    ("target", "head"),
    [("ip2", LossHead("logit", 3)), ("conv2", LossHead("channel", 5, "sum"))],
    ids=["logit-mean", "channel-sum"],
)
def test_smoothgrad_without_noise_is_the_gradient(
    digits_model: TrainedDigits, target: str, head: LossHead
) -> None:
    """Batches of 16, 16 and 8 identical copies: each copy's share of a batch-mean head is
    scaled back by its batch's size, and a sum head needs no scaling."""
    image = _held_out(digits_model)[0][5]
    kwargs: dict[str, Any] = dict(
        weights=digits_model.weights, image=image, target=target, head=head
    )
    plain = saliency(digits_model.deploy, **kwargs)
    smooth = saliency(
        digits_model.deploy, method="smoothgrad", noise=0.0, samples=40, chunk=16, **kwargs
    )
    assert float(np.abs(plain.gradient).max()) > 0
    _close(smooth.gradient, plain.gradient)
    _close(smooth.map, plain.map)
    assert smooth.requests == 1 + 3


@pytest.mark.caffe
def test_smoothgrad_is_seeded(digits_model: TrainedDigits) -> None:
    image = _held_out(digits_model)[0][7]
    kwargs: dict[str, Any] = dict(
        weights=digits_model.weights,
        image=image,
        head=LossHead("logit", 2),
        method="smoothgrad",
        samples=24,
    )
    first = saliency(digits_model.deploy, seed=1, **kwargs)
    again = saliency(digits_model.deploy, seed=1, **kwargs)
    other = saliency(digits_model.deploy, seed=2, **kwargs)
    del kwargs["samples"]  # an option of smoothgrad: refused for the plain gradient
    plain = saliency(digits_model.deploy, **{**kwargs, "method": "gradient"})
    np.testing.assert_array_equal(first.map, again.map)
    assert not np.allclose(first.map, other.map, rtol=0.01)
    assert not np.allclose(first.map, plain.map, rtol=0.01)  # the noise does something
    # The same draws however the copies are chunked (only float32 rounding differs).
    chunked = saliency(digits_model.deploy, seed=1, chunk=5, samples=24, **kwargs)
    _close(chunked.map, first.map)


@pytest.mark.caffe
def test_copies_and_steps_run_as_batches(
    digits_model: TrainedDigits, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One request per chunk of copies or path points, not one forward pass per item."""
    batches: list[int] = []
    run = CaffeSession.run

    def counting(self: CaffeSession, inputs: Any, **kwargs: Any) -> dict[str, Any]:
        batches.append(int(np.asarray(inputs["data"]).shape[0]))
        return run(self, inputs, **kwargs)

    monkeypatch.setattr(CaffeSession, "run", counting)
    image = _held_out(digits_model)[0][3]
    kwargs: dict[str, Any] = dict(
        weights=digits_model.weights, image=image, head=LossHead("logit", 1)
    )
    result = saliency(digits_model.deploy, method="smoothgrad", samples=50, **kwargs)
    assert batches == [1, 32, 18] and result.requests == 3
    batches.clear()
    result = saliency(digits_model.deploy, method="integrated", **kwargs)
    chunks = [DEFAULT_CHUNK] * (DEFAULT_STEPS // DEFAULT_CHUNK)
    chunks += [DEFAULT_STEPS % DEFAULT_CHUNK] if DEFAULT_STEPS % DEFAULT_CHUNK else []
    assert batches == [1, *chunks, 1]  # the image, the path in chunks, the baseline
    assert result.requests == len(batches)


@pytest.mark.caffe
def test_integrated_gradients_complete_at_the_default_steps(digits_model: TrainedDigits) -> None:
    """sum(attributions) == f(x) - f(black) within 5 % on the first held-out image of every
    other digit, for its own class and for the class it is least like (both far from 0)."""
    images, labels = _held_out(digits_model)
    picks = [int(np.flatnonzero(labels == digit)[0]) for digit in range(0, 10, 2)]
    logits = _logits(digits_model, images[picks])
    at_black = _logits(digits_model, np.zeros_like(images[:1]))[0]
    for row, index in enumerate(picks):
        for cls in (int(labels[index]), int(np.argmin(logits[row]))):
            result = saliency(
                digits_model.deploy,
                weights=digits_model.weights,
                image=images[index],
                head=LossHead("logit", cls),
                method="integrated",
            )
            # f(x) and f(baseline) are the class logits of plain forward passes.
            assert result.value == pytest.approx(float(logits[row, cls]), rel=F32_RTOL)
            assert result.baseline_value == pytest.approx(float(at_black[cls]), rel=F32_RTOL)
            assert result.baseline is not None and not result.baseline.any()
            delta = result.value - result.baseline_value
            gap = result.completeness_gap
            assert gap is not None and abs(gap) <= 0.05 * abs(delta), (index, cls, gap, delta)
            assert result.attributions is not None
            np.testing.assert_allclose(result.map, result.attributions.sum(axis=0), rtol=1e-6)


@pytest.mark.caffe
def test_integrated_baseline_is_preprocessed_like_the_image(
    digits_model: TrainedDigits, tmp_path: Path
) -> None:
    """With a mean, black is -mean * scale in the blob; a baseline file is preprocessed the
    same way; a baseline equal to the image attributes nothing."""
    images = _held_out(digits_model)[0]
    digit = tmp_path / "digit.png"
    Image.fromarray((images[4, 0] * 255 + 0.5).astype(np.uint8)).save(digit)
    pre = Preprocess(mean=(128.0,), scale=1 / 255)
    kwargs: dict[str, Any] = dict(
        weights=digits_model.weights, head=LossHead("logit", 3), method="integrated", preprocess=pre
    )
    black = saliency(digits_model.deploy, image=digit, **kwargs)
    assert black.baseline is not None
    np.testing.assert_allclose(black.baseline, -128 / 255, rtol=1e-6)
    np.testing.assert_allclose(black.input, np.round(images[4] * 255) / 255 - 128 / 255, atol=1e-6)
    base = _logits(digits_model, black.baseline[None])[0, 3]
    assert black.baseline_value == pytest.approx(float(base), rel=F32_RTOL)
    dark = tmp_path / "black.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(dark)
    from_file = saliency(digits_model.deploy, image=digit, baseline=dark, **kwargs)
    np.testing.assert_array_equal(from_file.attributions, black.attributions)
    itself = saliency(digits_model.deploy, image=digit, baseline=digit, **kwargs)
    assert itself.attributions is not None and not itself.attributions.any()
    assert itself.completeness_gap == 0


@pytest.mark.caffe
def test_cli_writes_the_picture_and_the_maps(
    digits_model: TrainedDigits, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, labels = _held_out(digits_model)
    digit = tmp_path / "digit.npy"
    np.save(digit, images[0])
    out = tmp_path / "map.png"
    argv = ["saliency", str(digits_model.deploy), "--weights", str(digits_model.weights)]
    argv += ["--image", str(digit), "--class", str(labels[0]), "--method", "integrated"]
    assert main([*argv, "--steps", "40", "--samples", "5", "-o", str(out)]) == 2
    refused = capsys.readouterr()
    assert "samples applies to the smoothgrad method only, not to integrated" in refused.err
    assert not out.exists()
    assert main([*argv, "--steps", "40", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    attributions = tmp_path / "map-attributions.npy"
    for path in (out, tmp_path / "map.npy", attributions):
        assert f"wrote {path}" in printed
    with Image.open(out) as picture:
        assert picture.format == "PNG" and picture.size[1] >= 256
    expected = saliency(
        digits_model.deploy,
        weights=digits_model.weights,
        image=images[0],
        head=LossHead("logit", int(labels[0])),
        method="integrated",
        steps=40,
    )
    np.testing.assert_array_equal(np.load(tmp_path / "map.npy"), expected.map)
    np.testing.assert_array_equal(np.load(attributions), expected.attributions)
    assert "attributions sum to" in printed
