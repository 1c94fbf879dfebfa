"""Golden before/after nets of the rewrites that carry weights (no Caffe): the result, the
report line by line, new weights that fit the new net blob for blob, input weights left
alone.  ``PROTOEDIT_REGOLD=1`` regenerates ``.out.prototxt`` and ``.report``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from protoedit import loads

from .weight_cases import CASES, apply, case_args, case_id
from .weights_nets import param_shapes, random_weights


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_golden(case: Path) -> None:
    stem = case.name.removesuffix(".in.prototxt")
    doc = loads(case.read_text(), path=str(case))
    weights = random_weights(doc)
    copy = {name: [b.copy() for b in blobs] for name, blobs in weights.items()}
    report = apply(case.parent.name, doc, weights, case_args(case))
    result = doc.dumps()
    lines = "".join(f"{line}\n" for line in report.lines())
    expected, expected_report = case.parent / f"{stem}.out.prototxt", case.parent / f"{stem}.report"
    if os.environ.get("PROTOEDIT_REGOLD"):
        expected.write_text(result)
        expected_report.write_text(lines)
    assert result == expected.read_text()
    assert lines == expected_report.read_text()
    # The new weights fit the new net exactly, layer for layer and shape for shape.
    shapes = param_shapes(loads(result))
    assert {name: [b.shape for b in blobs] for name, blobs in report.weights.items()} == shapes
    # The input weights are untouched; carried layers keep their blobs bitwise.
    for name, blobs in weights.items():
        assert all(np.array_equal(a, b) for a, b in zip(blobs, copy[name], strict=True))
    for new, old in report.carried.items():
        assert all(
            np.array_equal(a, b) for a, b in zip(report.weights[new], weights[old], strict=True)
        )
