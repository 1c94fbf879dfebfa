"""``fold_bn`` without Caffe: golden before/after nets, the folded arithmetic against numpy,
and what it refuses.  The proof in Caffe is in ``test_fold_bn_caffe.py``.

The golden cases (``fixtures/weights_rewrites/fold_bn/``) run in ``test_weight_rewrites.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from protoedit import loads
from protoedit.rewrites.affine import Affine, batch_norm, fold_into, scale
from protoedit.rewrites.carried import WeightsMismatchError
from protoedit.rewrites.fold_bn import fold_bn

from .helpers import FIXTURES
from .weights_nets import random_weights

GOLDEN = FIXTURES / "weights_rewrites" / "fold_bn"
CASES = sorted(GOLDEN.glob("*.in.prototxt"))


def test_a_second_fold_has_nothing_left_to_do() -> None:
    for case in CASES:
        doc = loads(case.read_text())
        report = fold_bn(doc, random_weights(doc))
        again = fold_bn(loads(doc.dumps()), report.weights)
        assert not again.changed, case.name
        assert again.weights.keys() == report.weights.keys()


def test_input_weights_are_left_alone() -> None:
    doc = loads((GOLDEN / "resnet_block.in.prototxt").read_text())
    weights = random_weights(doc)
    copy = {name: [b.copy() for b in blobs] for name, blobs in weights.items()}
    fold_bn(doc, weights)
    assert weights.keys() == copy.keys()
    for name, blobs in weights.items():
        assert all(np.array_equal(a, b) for a, b in zip(blobs, copy[name], strict=True))


def _reference_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, group: int) -> np.ndarray:
    """A direct 1x1-free reference: valid convolution, stride 1, by loops over groups."""
    n, _, h, wd = x.shape
    out, per, kh, kw = w.shape
    oh, ow = h - kh + 1, wd - kw + 1
    y = np.zeros((n, out, oh, ow))
    og = out // group
    for o in range(out):
        g = o // og
        for i in range(oh):
            for j in range(ow):
                patch = x[:, g * per : (g + 1) * per, i : i + kh, j : j + kw]
                y[:, o, i, j] = np.sum(patch * w[o], axis=(1, 2, 3)) + b[o]
    return y


def _reference_deconv(x: np.ndarray, w: np.ndarray, b: np.ndarray, group: int) -> np.ndarray:
    """Transposed convolution, stride 1, no padding: each input pixel spreads its kernel."""
    n, cin, h, wd = x.shape
    _, og, kh, kw = w.shape
    y = np.zeros((n, og * group, h + kh - 1, wd + kw - 1))
    ig = cin // group
    for i in range(cin):
        g = i // ig
        for r in range(h):
            for s in range(wd):
                y[:, g * og : (g + 1) * og, r : r + kh, s : s + kw] += (
                    x[:, i, r, s][:, None, None, None] * w[i][None]
                )
    return y + b[None, :, None, None]


def _channel_map(affine: Affine, y: np.ndarray) -> np.ndarray:
    shape = (1, -1) + (1,) * (y.ndim - 2)
    return y * affine.a.reshape(shape) + affine.b.reshape(shape)


@pytest.mark.parametrize("group", [1, 2, 6])
@pytest.mark.parametrize("kind", ["conv", "deconv"])
def test_fold_into_equals_the_map_after_the_layer(kind: str, group: int) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 6, 5, 5))
    if kind == "conv":
        w, reference = rng.normal(size=(6, 6 // group, 3, 3)), _reference_conv
    else:
        w, reference = rng.normal(size=(6, 6 // group, 3, 3)), _reference_deconv
    b = rng.normal(size=6)
    affine = batch_norm(rng.normal(size=6), rng.uniform(0.5, 2, 6), 0.5, 1e-5).then(
        scale(rng.normal(size=6), rng.normal(size=6), 6)
    )
    folded_w, folded_b = fold_into(kind, w, b, affine, group=group)
    expected = _channel_map(affine, reference(x, w, b, group))
    fw, fb = folded_w.astype(np.float64), folded_b.astype(np.float64)
    got = reference(x, fw, fb, group)
    # Folding is exact but for rounding each folded weight and bias to float32 (relative
    # 2**-24 each): a bound per element is the same layer on absolute values, times 2**-24.
    bound = reference(np.abs(x), np.abs(fw), np.abs(fb), group) * 2.0**-24
    assert np.all(np.abs(got - expected) <= bound * 1.001 + 1e-12)
    # ... and the other layout's axis is far outside it (depthwise: both layouts coincide).
    if group < 6:
        other = "deconv" if kind == "conv" else "conv"
        wrong = fold_into(other, w, b, affine, group=group)[0].astype(np.float64)
        assert np.max(np.abs(reference(x, wrong, fb, group) - expected)) > 1e3 * np.max(bound)


def test_fold_into_inner_product_plain_and_transposed() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 8))
    w = rng.normal(size=(5, 8))
    affine = batch_norm(rng.normal(size=5), rng.uniform(0.5, 2, 5), 2.0, 1e-3)
    for transpose, stored in ((False, w), (True, w.T.copy())):
        fw, fb = fold_into("inner_product", stored, None, affine, transpose=transpose)
        y = x @ (fw.T if not transpose else fw) + fb
        expected = _channel_map(affine, x @ w.T)
        assert np.max(np.abs(y - expected)) < 1e-5


def test_batch_norm_with_a_zero_scale_factor_ignores_the_statistics() -> None:
    # Caffe: a scale_factor of 0 multiplies the stored mean and variance by 0.
    affine = batch_norm(np.array([3.0, -1.0]), np.array([5.0, 7.0]), 0.0, 0.25)
    assert np.allclose(affine.a, [2.0, 2.0]) and np.allclose(affine.b, [0.0, 0.0])
    scaled = batch_norm(np.array([3.0]), np.array([8.0]), 2.0, 0.0)  # mean 1.5, var 4
    assert np.allclose(scaled.a, [0.5]) and np.allclose(scaled.b, [-0.75])


def test_a_batch_norm_whose_variance_is_not_positive_stays() -> None:
    net = (GOLDEN / "not_in_place.in.prototxt").read_text()
    doc = loads(net)
    weights = random_weights(doc)
    weights["bn2"][1][:] = -1.0
    weights["bn2"][0][:] = 0.0
    report = fold_bn(doc, weights)
    assert any(
        "'bn2' left in place: channel 0 has variance + eps" in line for line in report.flagged
    )
    assert [layer.name for layer in doc.message.layer] == ["data", "conv1", "relu1", "conv2", "bn2"]
    assert all(a is b for a, b in zip(report.weights["bn2"], weights["bn2"], strict=True))


def test_missing_weights_name_the_layer() -> None:
    doc = loads((GOLDEN / "grouped.in.prototxt").read_text())
    weights = random_weights(doc)
    del weights["bn_depthwise"]
    with pytest.raises(WeightsMismatchError, match="no blobs for layer 'bn_depthwise'"):
        fold_bn(doc, weights)


def test_shared_weights_are_not_folded() -> None:
    net = (
        (GOLDEN / "not_in_place.in.prototxt")
        .read_text()
        .replace(
            '  convolution_param { num_output: 4 kernel_size: 3 }\n}\nlayer {\n  name: "bn1"',
            '  param { name: "shared" }\n  convolution_param { num_output: 4 kernel_size: 3 }'
            '\n}\nlayer {\n  name: "bn1"',
        )
    )
    doc = loads(net)
    report = fold_bn(doc, random_weights(doc))
    assert "flagged: BatchNorm 'bn1' left in place: 'conv1' shares its weights" in "\n".join(
        report.lines()
    )
