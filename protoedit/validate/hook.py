"""What the pre-commit hook validates: solver files are skipped, and a train/val net whose
data layers read files is validated as its deploy net, rewritten in memory (``to_deploy``).

A repository's nets read databases that are not on the committer's machine; what can be
checked there is that the net, with an Input layer in place of its data layers, builds and
runs in Caffe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from protoedit.errors import ProtoeditError
from protoedit.net.layers import is_data_layer
from protoedit.validate.report import ValidationReport


def _reads_files(net: Any) -> bool:
    """Whether a layer of ``net`` (a bound ``NetParameter``) reads files, as the catalogue
    decides (:func:`~protoedit.net.layers.is_data_layer`: ``Data``, a Python reader, V1
    ``DATA``...; not ``DummyData``); comments and strings are not layers."""
    return any(is_data_layer(layer) for layer in [*net.layer, *net.layers])


def hook_nets(nets: list[Any], phase: str) -> tuple[list[Any], dict[int, ValidationReport]]:
    """The nets to validate (a Document for each train/val net, as its deploy net) and the
    reports of those skipped, by index."""
    from protoedit.document import detect_type, load
    from protoedit.rewrites import to_deploy
    from protoedit.schema import builtin_schema

    out: list[Any] = []
    skipped: dict[int, ValidationReport] = {}
    for index, net in enumerate(nets):
        out.append(net)
        if not isinstance(net, str | Path):
            continue
        try:
            doc = load(net, lenient=True)
        except (OSError, ProtoeditError):
            continue  # validation reports the unreadable or broken file itself
        if detect_type(doc.tree, builtin_schema()) == "caffe.SolverParameter":
            skipped[index] = ValidationReport(
                net=str(net),
                phase=phase,
                status="skipped",
                reason="a solver file, not a net: its net is validated as its own file",
            )
            continue
        if not _reads_files(doc.message):
            continue
        try:
            to_deploy(doc, phase)
        except ProtoeditError as exc:
            skipped[index] = ValidationReport(
                net=str(net),
                phase=phase,
                status="skipped",
                reason=f"a train/val net that cannot be made its deploy net here: {exc}",
            )
            continue
        out[index] = doc
    return out, skipped
