"""A :class:`NetGraph` drawn by Graphviz's ``dot``: SVG, PNG or PDF by the file's extension.

Node colours say what kind of layer it is; a change's dropped layers and blobs are grey and
dashed, added ones bold on yellow.  SVG elements carry the status as a class (``node
dropped``) so the picture can be checked, or restyled, structurally.
"""

from __future__ import annotations

import html
from pathlib import Path

import graphviz

from protoedit.draw.graph import (
    ADDED,
    CHANGED,
    DROPPED,
    INPUT_NODE,
    KEPT,
    OUTPUT_NODE,
    Edge,
    NetGraph,
    Node,
)
from protoedit.errors import InputError, ProtoeditError
from protoedit.net.layers import ACCURACY, DATA, LOSS, layer_type

#: Output formats by file extension (``.dot``/``.gv``: the Graphviz source itself).
FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}
RANKDIRS = ("TB", "LR")

#: Fill colours by the parameter message a layer type reads (the catalogue's ``*_param``).
_FILL = {
    "convolution_param": "#dbeafe",
    "pooling_param": "#dcfce7",
    "inner_product_param": "#ede9fe",
    "concat_param": "#ffedd5",
    "eltwise_param": "#ffedd5",
    "input_param": "#e5e7eb",
    "softmax_param": "#fce7f3",
    "accuracy_param": "#fce7f3",
    "reduction_param": "#fce7f3",
}
#: Fill colours by category, for the types without a colour of their own.
_CATEGORY_FILL = {DATA: "#e5e7eb", LOSS: "#fce7f3", ACCURACY: "#fce7f3"}


def _fill(layer_type_name: str) -> str:
    """A node's fill colour: what kind of layer it is."""
    entry = layer_type(layer_type_name)
    if entry is None:
        return "white"
    if entry.param_field in _FILL:
        return _FILL[entry.param_field]
    return next((c for k, c in _CATEGORY_FILL.items() if entry.has(k)), "white")


_NODE_STYLE = {
    KEPT: {"style": "rounded,filled", "color": "#374151", "penwidth": "1"},
    DROPPED: {
        "style": "rounded,dashed,filled",
        "color": "#9ca3af",
        "fillcolor": "#f3f4f6",
        "fontcolor": "#9ca3af",
        "penwidth": "1",
    },
    ADDED: {
        "style": "rounded,filled,bold",
        "color": "#d97706",
        "fillcolor": "#fde68a",
        "penwidth": "3",
    },
    CHANGED: {"style": "rounded,filled,bold", "color": "#2563eb", "penwidth": "3"},
}
_EDGE_STYLE = {
    KEPT: {"color": "#4b5563"},
    DROPPED: {"style": "dashed", "color": "#c0c4cc", "fontcolor": "#9ca3af"},
    ADDED: {"color": "#d97706", "penwidth": "2.5", "fontcolor": "#b45309"},
}
_FOLDED_COLOUR = {KEPT: "#374151", DROPPED: "#9ca3af", ADDED: "#b45309", CHANGED: "#374151"}


class GraphvizError(ProtoeditError):
    """Graphviz's ``dot`` is missing or failed."""


def _node_label(node: Node) -> str:
    """An HTML-like label: name in bold, type, key parameters, folded in-place layers."""
    esc = html.escape
    rows = [f"<B>{esc(node.key)}</B>", esc(node.type)]
    rows += [f'<FONT POINT-SIZE="10">{esc(p)}</FONT>' for p in node.params]
    for f in node.folded:  # by type only: "+ ReLU" (the names are in the tooltip)
        mark = {DROPPED: " (dropped)", ADDED: " (added)"}.get(f.status, "")
        mark = mark if f.status != node.status else ""
        rows.append(
            f'<FONT POINT-SIZE="10" COLOR="{_FOLDED_COLOUR[f.status]}">+ {esc(f.type)}{mark}</FONT>'
        )
    return "<" + "<BR/>".join(rows) + ">"


#: Points of room on each side of an edge label: ``dot`` places labels of neighbouring edges
#: (a loss head's Slice tops) as little as 2 pt apart, and a viewer's font may run wider.
LABEL_PAD = 4


def _edge_label(edge: Edge) -> str:
    """The shape, with the blob's name unless it is the name of the layer that writes it; an
    HTML-like label padded by :data:`LABEL_PAD`, so neighbouring labels never touch."""
    shape = "" if edge.shape is None else "x".join(map(str, edge.shape)) or "scalar"
    lines = [shape] if edge.blob == edge.tail and shape else [edge.blob, shape] if shape else []
    lines = lines or [edge.blob]
    text = "<BR/>".join(html.escape(line) for line in lines)
    return (
        f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="{LABEL_PAD}">'
        f"<TR><TD>{text}</TD></TR></TABLE>>"
    )


def _tooltip(node: Node) -> str:
    """The names of every layer a node draws (the folded ones are shown by type only)."""
    return " + ".join([node.key, *(f.key for f in node.folded)])


def to_graphviz(graph: NetGraph, rankdir: str = "TB") -> graphviz.Digraph:
    """The Graphviz graph of ``graph``, laid out top to bottom (``TB``) or left to right."""
    if rankdir not in RANKDIRS:
        raise InputError(f"rankdir must be one of {', '.join(RANKDIRS)}, not {rankdir!r}")
    dot = graphviz.Digraph("net")
    dot.attr(rankdir=rankdir, nodesep="0.2", ranksep="0.3", fontname="Helvetica")
    dot.attr("node", shape="box", fontname="Helvetica", fontsize="12", margin="0.12,0.05")
    dot.attr("edge", fontname="Helvetica", fontsize="9", arrowsize="0.7")
    # Graphviz reads ``a:b`` in an edge as node a, port b: nodes get plain ids, and the
    # SVG element keeps the layer's key as its ``id``.
    ids: dict[str, str] = {}
    for node in graph.nodes.values():
        ids[node.key] = f"n{len(ids)}"
        style = dict(_NODE_STYLE[node.status])
        style.setdefault("fillcolor", _fill(node.type))
        attributes = {
            "class": f"layer {node.status}",
            "id": f"layer:{node.key}",
            "tooltip": _tooltip(node),
        }
        dot.node(ids[node.key], _node_label(node), _attributes=attributes, **style)
    terminals: dict[str, str] = {}
    for edge in graph.edges.values():
        for end in (edge.tail, edge.head):
            if end.startswith((INPUT_NODE, OUTPUT_NODE)) and end not in graph.nodes:
                terminals[end] = terminals.get(end, DROPPED) if edge.status == DROPPED else KEPT
    for name, status in terminals.items():
        ids[name] = f"t{len(ids)}"
        attributes = {"class": f"terminal {status}", "id": name}
        dot.node(
            ids[name],
            name.split(":", 1)[1],
            shape="plaintext",
            fontcolor=_NODE_STYLE[status]["color"],
            _attributes=attributes,
        )
    for edge in graph.edges.values():
        attributes = {"class": f"blob {edge.status}", "id": f"blob:{edge.blob}:{len(ids)}"}
        ids[f"edge{len(ids)}"] = ""
        dot.edge(
            ids[edge.tail],
            ids[edge.head],
            _edge_label(edge),
            _attributes=attributes,
            **_EDGE_STYLE[edge.status],
        )
    return dot


def output_format(path: str | Path) -> str:
    """The Graphviz format a file name asks for (by extension)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(
            f"cannot tell the picture format of '{path}': use one of " + ", ".join(sorted(FORMATS))
        )
    return FORMATS[suffix]


def render(graph: NetGraph, fmt: str = "svg", rankdir: str = "TB") -> bytes:
    """The picture in ``fmt`` (``svg``, ``png``, ``pdf`` or ``dot`` source), as bytes."""
    dot = to_graphviz(graph, rankdir)
    if fmt == "dot":
        return str(dot.source).encode("utf-8")
    try:
        return bytes(dot.pipe(format=fmt))
    except graphviz.ExecutableNotFound:
        raise GraphvizError(
            "Graphviz's `dot` program was not found on PATH; install Graphviz "
            "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz)"
        ) from None
    except graphviz.CalledProcessError as exc:
        message = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise GraphvizError(f"dot failed: {message[-1] if message else exc}") from None


def write_picture(graph: NetGraph, path: str | Path, rankdir: str = "TB") -> None:
    """Render ``graph`` into ``path``, the format chosen by its extension."""
    data = render(graph, output_format(path), rankdir)
    Path(path).write_bytes(data)
