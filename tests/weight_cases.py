"""The golden cases of the rewrites that carry weights, shared by the golden tests and the
proofs in Caffe: ``fixtures/weights_rewrites/<rewrite>/<case>.in.prototxt`` with its
arguments in ``<case>.args.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from protoedit.document import Document
from protoedit.rewrites import WeightsReport, fold_bn, fully_conv, input_channels, rename

from .helpers import FIXTURES

GOLDEN = FIXTURES / "weights_rewrites"
CASES = sorted(GOLDEN.glob("*/*.in.prototxt"))


def case_id(case: Path) -> str:
    return f"{case.parent.name}/{case.name.split('.')[0]}"


def case_args(case: Path) -> dict[str, Any]:
    stem = case.name.removesuffix(".in.prototxt")
    args: dict[str, Any] = json.loads((case.parent / f"{stem}.args.json").read_text())
    return args


def apply(rewrite: str, doc: Document, weights: Any, args: dict[str, Any]) -> WeightsReport:
    """Run one weights rewrite by its folder name with the case's arguments."""
    if rewrite == "fold_bn":
        return fold_bn(doc, weights)
    if rewrite == "rename":
        return rename(doc, args["renames"], weights)
    if rewrite == "fully_conv":
        return fully_conv(doc, weights)
    if rewrite == "input_channels":
        return input_channels(doc, args["channels"], weights, swap=args.get("swap", False))
    raise AssertionError(rewrite)
