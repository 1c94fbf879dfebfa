"""The one way rewrites remove layers: delete back to front, record each drop and why."""

from __future__ import annotations

from collections.abc import Mapping

from protoedit.document import Document
from protoedit.net.view import NetView
from protoedit.rewrites.report import RewriteReport


def drop_layers(
    doc: Document, view: NetView, reasons: Mapping[int, str], report: RewriteReport
) -> None:
    """Remove the layers whose index is in ``reasons``; report them in file order.

    Deleting from the back keeps the earlier nodes where the view found them.
    """
    doomed = [info for info in view.layers if info.index in reasons]
    for info in reversed(doomed):
        doc.remove(doc.tree, info.node)
    for info in doomed:
        why = reasons[info.index]
        report.dropped.append(f"layer '{info.name}' ({info.type}): {why}")
        report.removed.setdefault(info.name, why)
