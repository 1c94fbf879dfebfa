"""The weights a rewritten net uses: after ``to-deploy``, ``truncate`` or ``aux`` only the
layers that are left keep their blobs, so the ``.caffemodel`` written beside the net holds
nothing Caffe would skip (or, for a layer that lost its parameters, refuse)."""

from __future__ import annotations

from typing import Any

from protoedit.document import Document
from protoedit.net.layers import param_blobs
from protoedit.net.view import NetView
from protoedit.rewrites.carried import WeightsReport, arrays_of, weights_like

__all__ = ["used_weights"]


def used_weights(doc: Document, weights: Any) -> WeightsReport:
    """The blobs of the layers ``doc`` has, in the weights' order; the report says how many
    layers' blobs went, and flags each layer with parameters that the weights lack (Caffe
    would leave it at its random initialisation without a word)."""
    view = NetView(doc)
    names = {info.name for info in view.layers}
    arrays = arrays_of(weights)
    kept = {name: blobs for name, blobs in arrays.items() if name in names and blobs}
    report = WeightsReport(carried={name: name for name in kept})
    gone = [name for name, blobs in arrays.items() if blobs and name not in names]
    if gone:
        shown = ", ".join(f"'{name}'" for name in gone[:5])
        more = f" and {len(gone) - 5} more" if len(gone) > 5 else ""
        report.changed.append(
            f"weights: kept the blobs of {len(kept)} layers, left out {len(gone)} that the net "
            f"no longer has ({shown}{more})"
        )
    report.flagged += [
        f"weights: layer '{info.name}' ({info.type}) has parameters but the weights hold none "
        "(Caffe would leave them random)"
        for info in view.layers
        if param_blobs(info.param) and info.name not in kept
    ]
    report.weights = weights_like(weights, kept, {})
    return report
