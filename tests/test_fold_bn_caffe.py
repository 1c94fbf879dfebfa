"""The check of a weights rewrite in Caffe catches what it must: a fold slightly wrong (the
first blob that diverges is named), carried weights that moved by one ulp, missing weights.
Each fold-bn variant is proven in ``test_weight_rewrites_caffe.py``."""

from __future__ import annotations

import numpy as np
import pytest

from protoedit import loads
from protoedit.caffe import Session
from protoedit.rewrites.fold_bn import fold_bn
from protoedit.validate.equivalence import check_equivalence, check_rewrite

from .helpers import FIXTURES
from .weights_nets import random_weights

pytestmark = pytest.mark.caffe

GOLDEN = FIXTURES / "weights_rewrites" / "fold_bn"


def test_the_check_names_the_first_blob_a_wrong_fold_breaks(caffe_session: Session) -> None:
    text = (GOLDEN / "resnet_block.in.prototxt").read_text()
    doc = loads(text)
    weights = random_weights(doc, seed=2)
    report = fold_bn(doc, weights)
    # One output channel of conv2 off by one part in a thousand: what a fold that drops a
    # rounding-sized factor would not do, but a wrong eps or a stale statistic would.
    wrong = {name: [b.copy() for b in blobs] for name, blobs in report.weights.items()}
    wrong["conv2"][0][3] *= 1.001
    verdict = check_equivalence(
        loads(text), weights, doc, wrong, carried=report.carried, session=caffe_session
    )
    assert not verdict.ok
    first = verdict.first_divergence
    assert first is not None and first.blob == "conv2"
    assert any(line.startswith("first blob that diverges: conv2:") for line in verdict.lines())
    assert verdict.exit_code == 1


def test_changed_carried_weights_and_missing_weights_fail(caffe_session: Session) -> None:
    text = (GOLDEN / "resnet_block.in.prototxt").read_text()
    doc = loads(text)
    weights = random_weights(doc, seed=3)
    report = fold_bn(doc, weights)
    assert report.carried == {"fc": "fc"}
    nudged = {name: list(blobs) for name, blobs in report.weights.items()}
    bias = nudged["fc"][1].copy()
    bias[0] = np.nextafter(bias[0], np.float32(np.inf))  # one ulp: not bitwise any more
    nudged["fc"] = [nudged["fc"][0], bias]
    verdict = check_rewrite(
        loads(text), weights, doc, report, weights=nudged, session=caffe_session
    )
    assert verdict.changed_params == [("fc", "fc")]
    assert verdict.first_divergence is None  # within tolerance, but carried weights must be equal
    assert not verdict.ok
    del nudged["fc"]
    verdict = check_rewrite(
        loads(text), weights, doc, report, weights=nudged, session=caffe_session
    )
    assert verdict.missing == ["fc"] and not verdict.ok
