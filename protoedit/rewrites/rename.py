"""``rename``: layers renamed together with their weights (Caffe copies weights by layer
name, and a layer it finds none for keeps its random initialisation without a word).

A layer's top that carries the layer's own name (``conv1`` writing ``conv1``, the usual
convention) is renamed with it, in every ``bottom`` and ``top`` that names it, so the net
stays consistent and keeps its convention; other blobs keep their names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from protoedit.document import Document
from protoedit.errors import InvalidArgumentError
from protoedit.net.layers import param_blobs
from protoedit.net.view import LayerInfo, NetView
from protoedit.rewrites.add_loss import rename_blobs
from protoedit.rewrites.carried import WeightsReport, arrays_of, weights_like
from protoedit.rewrites.check import check_result, lint_errors
from protoedit.schema.binding import suggest
from protoedit.schema.values import quote
from protoedit.syntax.tree import Scalar

__all__ = ["rename"]


def _checked(view: NetView, renames: Mapping[str, str]) -> None:
    """Refuse a rename that names no layer, one of several, or makes two layers one name."""
    counts = Counter(info.name for info in view.layers)
    names = sorted(counts)
    for old, new in renames.items():
        where = f"{old}={new}"
        if not new or new == old:
            raise InvalidArgumentError(
                f"'{where}': the new name must differ from the old", "rename"
            )
        if counts[old] == 0:
            raise InvalidArgumentError(
                f"'{where}': no layer named '{old}'" + suggest(old, names), "rename"
            )
        if counts[old] > 1:
            raise InvalidArgumentError(
                f"'{where}': {counts[old]} layers are named '{old}' (Caffe gives them the "
                "same weights); rename them in the file one by one",
                "rename",
            )
    after = Counter(renames.get(name, name) for name in counts.elements())
    twice = sorted(name for name, count in after.items() if count > 1)
    if twice:
        raise InvalidArgumentError(f"after renaming, '{twice[0]}' would name two layers", "rename")


def _blob_renames(view: NetView, renames: Mapping[str, str]) -> dict[str, str]:
    """Blob renames that follow layer renames: a top named like its (first) writer."""
    blobs = {w.blob for info in view.layers for w in info.writes} | {
        r.blob for info in view.layers for r in info.reads
    }
    found: dict[str, str] = {}
    for info in view.layers:
        new = renames.get(info.name)
        if new is None or info.name not in {w.blob for w in info.writes}:
            continue
        first = next(i for i in view.layers if any(w.blob == info.name for w in i.writes))
        if first is info and new not in blobs:
            found[info.name] = new
    return found


def _rename_layer(doc: Document, info: LayerInfo, new: str) -> None:
    assert info.block is not None
    field = doc.elements(info.block, "name")[0][1]
    assert isinstance(field, Scalar)
    doc.replace_item(field, quote(new))


def rename(doc: Document, renames: Mapping[str, str], weights: Any = None) -> WeightsReport:
    """Rename layers ``{old: new}`` and their weights (``weights``: a ``Weights`` or
    ``{layer: [arrays]}``, or None for the net alone); a top named like its layer follows.
    The report's weights are the renamed ones; ``carried`` and ``blobs`` map new names to
    old."""
    view = NetView.editable(doc)
    _checked(view, renames)
    baseline = lint_errors(doc)
    report = WeightsReport(changed=list(view.normalised))
    moved = _blob_renames(view, renames)
    entries: dict[str, list[tuple[str, LayerInfo, int]]] = {blob: [] for blob in moved}
    for info in view.layers:
        for kind, values in (("bottom", info.reads), ("top", info.writes)):
            for nth, version in enumerate(values):
                if version.blob in moved:
                    entries[version.blob].append((kind, info, nth))
    for blob, places in entries.items():
        rename_blobs(doc, places, moved[blob])
    for info in view.layers:
        if info.name in renames:
            _rename_layer(doc, info, renames[info.name])
            also = f" (and its blob '{info.name}')" if info.name in moved else ""
            report.changed.append(f"layer '{info.name}' renamed '{renames[info.name]}'{also}")
    check_result(doc, "rename", baseline=baseline)
    report.blobs = {new: old for old, new in moved.items()}
    if weights is None:
        return report
    arrays = arrays_of(weights)
    clash = [
        new
        for old, new in renames.items()
        if old in arrays and new in arrays and new not in renames
    ]
    if clash:
        raise InvalidArgumentError(
            f"the weights already hold a layer named '{clash[0]}'; renaming onto it would "
            "leave Caffe two layers' weights under one name",
            "rename",
        )
    new = {renames.get(name, name): blobs for name, blobs in arrays.items()}
    report.weights = weights_like(
        weights, new, {}, renamed={new: old for old, new in renames.items()}
    )
    kept = {renames.get(info.name, info.name) for info in view.layers}
    report.carried = {renames.get(n, n): n for n in arrays if renames.get(n, n) in kept}
    learns = {info.name for info in view.layers if param_blobs(info.param)}
    report.flagged += [
        f"the weights hold nothing for layer '{name}', which has parameters"
        for name in renames
        if name not in arrays and name in learns
    ]
    return report
