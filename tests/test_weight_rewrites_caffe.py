"""Every rewrite that carries weights, proven in Caffe: each golden case runs beside its
original on the same seeded inputs (:func:`check_rewrite`), through ``.caffemodel`` files
written by :mod:`protoedit.weights` and copied by Caffe by layer name.  ``fully-conv`` is
also run on a larger image, where each place of its output map must be the original net on
the window of the input under it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protoedit import loads
from protoedit.caffe import Session
from protoedit.explain.session import CaffeSession
from protoedit.rewrites import fully_conv
from protoedit.validate.equivalence import UNIT_ROUNDOFF, check_rewrite
from protoedit.weights import Weights, save

from .weight_cases import CASES, apply, case_args, case_id
from .weights_nets import random_weights

pytestmark = pytest.mark.caffe

FULLY_CONV = next(c for c in CASES if c.parent.name == "fully_conv")


def _saved(arrays: Any, path: Path) -> Path:
    weights = arrays if isinstance(arrays, Weights) else Weights.from_arrays(arrays)
    save(weights, path)
    return path


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_the_rewritten_net_computes_what_the_original_did(
    case: Path, caffe_session: Session, tmp_path: Path
) -> None:
    text = case.read_text()
    factors = [0.7, 0.0] if case.parent.name == "fold_bn" else [0.7]  # scale_factor 0 too
    for factor in factors:
        doc = loads(text)
        weights = random_weights(doc, seed=1, scale_factor=factor)
        report = apply(case.parent.name, doc, Weights.from_arrays(weights), case_args(case))
        original: Any = _saved(weights, tmp_path / "original.caffemodel")
        written: Any = _saved(report.weights, tmp_path / "rewritten.caffemodel")
        verdict = check_rewrite(
            loads(text), original, doc, report, weights=written, session=caffe_session
        )
        assert verdict.ok, (factor, verdict.lines())
        assert len(verdict.blobs) >= 2
        assert {new for new, _, _ in verdict.params} == set(report.carried)
        if case.parent.name == "rename":  # renamed weights and blobs: bitwise
            assert sorted(verdict.params) == [
                ("classifier", "fc", True),
                ("features", "conv1", True),
            ]
            assert all(b.difference == 0 for b in verdict.blobs)
            assert {(b.blob, b.original) for b in verdict.blobs} >= {("features", "conv1")}


def _windows(x: np.ndarray, size: int, stride: int, places: int) -> list[tuple[int, int, Any]]:
    return [
        (i, j, x[:, :, stride * i : stride * i + size, stride * j : stride * j + size])
        for i in range(places)
        for j in range(places)
    ]


def test_fully_conv_on_a_larger_image_gives_the_original_on_each_window(
    caffe_session: Session, tmp_path: Path
) -> None:
    text = FULLY_CONV.read_text()
    doc = loads(text)
    arrays = random_weights(doc, seed=5)
    report = fully_conv(doc, Weights.from_arrays(arrays))
    # The net's stride up to fc1 is 3 (conv1 stride 1, pool1 stride 3): an input 2 x 3
    # wider gives a 3 x 3 map of outputs.
    size, stride, places = 14, 3, 3
    large = size + stride * (places - 1)
    big = doc.dumps().replace(f"dim: {size} dim: {size}", f"dim: {large} dim: {large}")
    x = np.random.default_rng(6).standard_normal((2, 3, large, large)).astype(np.float32)
    absolute = {name: [np.abs(b) for b in blobs] for name, blobs in arrays.items()}
    files = {
        "original": _saved(arrays, tmp_path / "original.caffemodel"),
        "absolute": _saved(absolute, tmp_path / "absolute.caffemodel"),
        "converted": _saved(report.weights, tmp_path / "converted.caffemodel"),
    }
    with CaffeSession(big, weights=files["converted"], session=caffe_session) as net:
        logits = net.run({"data": x}, backward=False, blobs=("fc2",))["blobs"]["fc2"]
    assert logits.shape == (2, 4, places, places)
    # Each place computes the original's dot products in another order at most.  A sum of
    # n products in float32 is within (n-1)u of its exact value relative to the sum of the
    # terms' magnitudes; along the path conv1 (27 terms), fc1 (80) and fc2 (8) that is
    # gamma_N |net|(|x|) with N = 115, where |net| is the net with absolute weights (ReLU
    # and max pooling are monotone): twice that between two orders.
    n = 27 + 80 + 8
    gamma = n * UNIT_ROUNDOFF / (1 - n * UNIT_ROUNDOFF)
    with (
        CaffeSession(text, weights=files["original"], session=caffe_session) as original,
        CaffeSession(text, weights=files["absolute"], session=caffe_session) as magnitude,
    ):
        for i, j, window in _windows(x, size, stride, places):
            want = original.run({"data": window}, backward=False, blobs=("fc2",))["blobs"]["fc2"]
            terms = magnitude.run({"data": np.abs(window)}, backward=False, blobs=("fc2",))
            bound = 2 * gamma * terms["blobs"]["fc2"]
            got = logits[:, :, i, j]
            assert np.all(np.abs(got - want) <= bound), (i, j, np.max(np.abs(got - want)))
            assert np.max(np.abs(want)) > 100 * np.max(bound)  # the bound is not vacuous
