"""Pictures of nets (Graphviz): one net, or one change (before/after a rewrite)."""

from __future__ import annotations

from pathlib import Path

from protoedit.document import Document
from protoedit.draw.graph import ADDED, DROPPED, KEPT, Edge, NetGraph, Node, merge, net_graph
from protoedit.draw.render import FORMATS, GraphvizError, output_format, render, write_picture


def change_graph(
    before: Document, after: Document, phase: str | None = None, *, summary: bool = False
) -> NetGraph:
    """One graph of ``before`` turned into ``after``: kept, dropped and added layers (with
    ``summary``, each node's shapes, parameters and FLOPs)."""
    return merge(
        net_graph(before, phase, summary=summary), net_graph(after, phase, summary=summary)
    )


def draw_net(
    doc: Document,
    path: str | Path,
    rankdir: str = "TB",
    phase: str | None = None,
    *,
    summary: bool = False,
) -> None:
    """Draw ``doc`` into ``path`` (``.svg``, ``.png``, ``.pdf``, or ``.dot`` source); with
    ``summary`` each node shows its output shape, parameters and FLOPs."""
    write_picture(net_graph(doc, phase, summary=summary), path, rankdir)


def draw_change(
    before: Document,
    after: Document,
    path: str | Path,
    rankdir: str = "TB",
    phase: str | None = None,
) -> None:
    """Draw the change from ``before`` to ``after`` into ``path``."""
    write_picture(change_graph(before, after, phase), path, rankdir)


__all__ = [
    "ADDED",
    "DROPPED",
    "FORMATS",
    "KEPT",
    "Edge",
    "GraphvizError",
    "NetGraph",
    "Node",
    "change_graph",
    "draw_change",
    "draw_net",
    "merge",
    "net_graph",
    "output_format",
    "render",
    "write_picture",
]
