"""A net as a graph to draw: layers as nodes, blob values as edges, in-place chains folded.

An in-place layer (ReLU, BatchNorm, Scale, Dropout ... with ``top == bottom``) is drawn
inside the node of the layer whose output it rewrites, as Netron does, so a ResNet block is
three nodes rather than nine.  Edges carry the blob name and its statically inferred shape
where :mod:`protoedit.net.shapes` knows it.  :func:`merge` makes one graph of a change
(before/after a rewrite): each node and edge marked kept, dropped or added.  Nothing here
knows about Graphviz or the command line.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from protoedit.diff.compare import layer_keys, prepare
from protoedit.document import Document
from protoedit.errors import InputError, ProtoeditError
from protoedit.net.layers import layer_type
from protoedit.net.state import NetState
from protoedit.net.view import INPUT, BlobVersion, LayerInfo, NetView

KEPT, DROPPED, ADDED = "kept", "dropped", "added"
CHANGED = "changed"  # a layer kept by name whose type or key parameters changed
#: Prefixes of the terminal nodes: blobs read from outside, and the net's outputs.
INPUT_NODE, OUTPUT_NODE = "in:", "out:"


@dataclass
class Folded:
    """An in-place layer drawn inside its host's node."""

    key: str
    type: str
    status: str = KEPT


@dataclass
class Node:
    """One drawn layer (with the in-place layers folded into it)."""

    key: str
    type: str
    params: list[str]
    folded: list[Folded] = field(default_factory=list)
    status: str = KEPT


@dataclass
class Edge:
    """A blob value from one node to another (or to/from a terminal node)."""

    tail: str
    head: str
    blob: str
    shape: list[int] | None
    status: str = KEPT

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity across two graphs: the two ends and the blob."""
        return (self.tail, self.head, self.blob)


@dataclass
class NetGraph:
    """Nodes by layer key (file order), edges by :attr:`Edge.key`, and where folded layers went."""

    nodes: dict[str, Node] = field(default_factory=dict)
    edges: dict[tuple[str, str, str], Edge] = field(default_factory=dict)
    host: dict[str, str] = field(default_factory=dict)  # folded layer key -> node key


def _dims(values: Any) -> str:
    """``1x3x224x224``."""
    return "x".join(str(int(v)) for v in values)


def _per_axis(values: Any, h: int, w: int) -> list[int]:
    """Caffe's repeated spatial field or its ``_h``/``_w`` pair, as given."""
    return [h, w] if h or w else [int(v) for v in values]


def _short(values: list[int]) -> str:
    """``2`` for the same value on every axis, else ``2x1``."""
    return str(values[0]) if len(set(values)) == 1 else _dims(values)


def _window(kernel: list[int], stride: list[int], pad: list[int]) -> str:
    """``3x3 /2 pad 1``: a kernel (square when one value), its stride and padding (a stride
    of 1 and no padding left out)."""
    text = _dims(kernel * 2 if len(kernel) == 1 else kernel) if kernel else "?"
    text += f" /{_short(stride)}" if stride and any(s > 1 for s in stride) else ""
    return text + (f" pad {_short(pad)}" if pad and any(pad) else "")


def key_params(info: LayerInfo) -> list[str]:
    """The parameters that say what a layer does, one short line each (and a loss weight)."""
    lines = _type_params(info)
    weights = [w for w in info.param.loss_weight if w]
    if weights:
        lines.append("loss weight " + ", ".join(f"{w:g}" for w in weights))
    return lines


def _enum_name(message: Any, field_name: str) -> str:
    """The name of an enum field's value (``MAX``, ``SUM``)."""
    fd = message.DESCRIPTOR.fields_by_name[field_name]
    return str(fd.enum_type.values_by_number[getattr(message, field_name)].name)


def _type_params(info: LayerInfo) -> list[str]:
    """The key parameters of the layer types that have any worth showing, by the parameter
    message their type reads (the layer catalogue's ``*_param`` field)."""
    p = info.param
    entry = layer_type(info.type)
    kind = entry.param_field if entry is not None else None
    if kind == "convolution_param":
        c = p.convolution_param
        line = _window(
            _per_axis(c.kernel_size, c.kernel_h, c.kernel_w),
            _per_axis(c.stride, c.stride_h, c.stride_w),
            _per_axis(c.pad, c.pad_h, c.pad_w),
        )
        line += f", {c.num_output} out" + (f", group {c.group}" if c.group > 1 else "")
        dilation = [int(d) for d in c.dilation]
        return [line] + ([f"dilation {_short(dilation)}"] if any(d > 1 for d in dilation) else [])
    if kind == "pooling_param":
        q = p.pooling_param
        method = _enum_name(q, "pool")
        if q.global_pooling:
            return [f"{method} global"]
        kernel = [q.kernel_h, q.kernel_w] if q.kernel_h or q.kernel_w else [q.kernel_size]
        stride = [q.stride_h, q.stride_w] if q.stride_h or q.stride_w else [q.stride]
        pad = [q.pad_h, q.pad_w] if q.pad_h or q.pad_w else [q.pad]
        return [f"{method} {_window(kernel, stride, pad)}"]
    if kind == "inner_product_param":
        return [f"{p.inner_product_param.num_output} out"]
    if kind == "input_param":
        return [_dims(s.dim) for s in p.input_param.shape]
    if kind == "lrn_param":
        return [f"size {p.lrn_param.local_size}"]
    if kind == "dropout_param":
        return [f"ratio {p.dropout_param.dropout_ratio:g}"]
    if kind == "eltwise_param":
        return [_enum_name(p.eltwise_param, "operation")]
    if kind == "slice_param":
        points = ",".join(map(str, p.slice_param.slice_point))
        return [f"axis {p.slice_param.axis}" + (f" at {points}" if points else "")]
    if kind == "reduction_param":
        r = p.reduction_param
        return [f"{_enum_name(r, 'operation')} from axis {r.axis}"]
    if kind == "concat_param" and p.concat_param.axis != 1:
        return [f"axis {p.concat_param.axis}"]
    if kind == "reshape_param":
        return [_dims(p.reshape_param.shape.dim)]
    if kind == "data_param" and p.data_param.batch_size:
        return [f"batch {p.data_param.batch_size}"]
    return []


def _shapes(view: NetView) -> dict[BlobVersion, list[int] | None]:
    """Inferred shapes, layer by layer; where inference fails for a layer, its outputs and
    what depends on them go without (the drawing never fails for a shape)."""
    from protoedit.net.inputs import header_shapes
    from protoedit.net.shapes import layer_shapes

    header = header_shapes(view.doc.message)
    found: dict[BlobVersion, list[int] | None] = {}
    for info in view.layers:
        ins = [found.get(r) if r.producer != INPUT else header.get(r.blob) for r in info.reads]
        outs: list[list[int] | None] = [None] * len(info.writes)
        known = [s for s in ins if s is not None]
        if len(known) == len(ins):
            with contextlib.suppress(ProtoeditError):  # this layer's outputs stay unknown
                outs = list(layer_shapes(view, info, known))
        for version, shape in zip(info.writes, outs, strict=False):
            found[version] = shape
    return found


def _in_place_source(info: LayerInfo) -> BlobVersion | None:
    """The value an in-place layer rewrites (its first top that is also its bottom)."""
    for nth, read in enumerate(info.reads):
        if nth < len(info.writes) and info.writes[nth].blob == read.blob:
            return read
    return None


def _layer_costs(view: NetView) -> dict[int, tuple[str, int | None, int | None]]:
    """Per layer index: its output shapes, parameters and FLOPs; ``{}`` when the net's
    shapes are invalid (the drawing never fails for a summary)."""
    from protoedit.net.summary import summarise_view

    try:
        rows = summarise_view(view).rows
    except ProtoeditError:
        return {}
    rows = rows[len(rows) - len(view.layers) :]  # after a legacy header's input rows
    return {
        info.index: (
            ", ".join("?" if s is None else _dims(s) for s in row.shapes),
            row.params,
            row.flops,
        )
        for info, row in zip(view.layers, rows, strict=True)
    }


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b


def net_graph(doc: Document, phase: str | None = None, *, summary: bool = False) -> NetGraph:
    """The graph of ``doc`` (legacy files upgraded in memory), for one phase or all layers;
    with ``summary`` each node also shows its parameters and FLOPs (in-place layers
    included) and each edge its shape."""
    if not doc.message_type.endswith(".NetParameter"):
        raise InputError(f"{doc.path} holds a {doc.message_type}, not a net: nothing to draw")
    view = NetView(prepare(doc), NetState(phase) if phase else None)
    shapes = _shapes(view)
    costs = _layer_costs(view) if summary else {}
    graph = NetGraph()
    owner: dict[int, str] = {}  # layer index -> the node that draws it
    keys = layer_keys([info.name for info in view.layers])
    for info, key in zip(view.layers, keys, strict=True):
        source = _in_place_source(info)
        host = owner.get(source.producer) if source is not None else None
        if host is not None:
            graph.nodes[host].folded.append(Folded(key, info.type))
            graph.host[key] = host
            owner[info.index] = host
        else:
            graph.nodes[key] = Node(key, info.type, key_params(info))
            owner[info.index] = key
    totals: dict[str, tuple[str, int | None, int | None]] = {}
    for index, (shape, params, flops) in costs.items():  # in-place layers add to their host
        key = owner[index]
        _, was_params, was_flops = totals.get(key, ("", 0, 0))
        totals[key] = (shape, _add(was_params, params), _add(was_flops, flops))
    from protoedit.net.summary import human

    for key, (shape, params, flops) in totals.items():
        graph.nodes[key].params += [f"out {shape}", f"params {human(params)}, FLOPs {human(flops)}"]
    for info in view.layers:
        head = owner[info.index]
        for read in info.reads:
            tail = owner.get(read.producer, INPUT_NODE + read.blob)
            if tail != head:
                edge = Edge(tail, head, read.blob, shapes.get(read))
                graph.edges.setdefault(edge.key, edge)
    for version in view.outputs():
        edge = Edge(
            owner[version.producer], OUTPUT_NODE + version.blob, version.blob, shapes.get(version)
        )
        graph.edges.setdefault(edge.key, edge)
    return graph


def merge(before: NetGraph, after: NetGraph) -> NetGraph:
    """One graph of a change: ``after``'s nodes and edges (added where ``before`` lacks them)
    plus ``before``'s that are gone, marked dropped.  Layers match by name; one kept whose
    type or key parameters differ is marked changed."""
    present_before = set(before.nodes) | set(before.host)
    present_after = set(after.nodes) | set(after.host)
    merged = NetGraph(host=dict(after.host))
    for key, node in after.nodes.items():
        folded = [
            Folded(f.key, f.type, KEPT if f.key in present_before else ADDED) for f in node.folded
        ]
        status = KEPT if key in present_before else ADDED
        was = before.nodes.get(key)
        if was is not None and (was.type, was.params) != (node.type, node.params):
            status = CHANGED  # to-deploy's data layer, Data -> Input
        merged.nodes[key] = Node(key, node.type, node.params, folded, status)
    for key, node in before.nodes.items():
        gone = [Folded(f.key, f.type, DROPPED) for f in node.folded if f.key not in present_after]
        if key in merged.nodes:
            merged.nodes[key].folded += gone
        elif key in after.host:
            merged.nodes[after.host[key]].folded += gone
        else:
            merged.nodes[key] = Node(key, node.type, node.params, gone, DROPPED)
    for key, node in before.nodes.items():
        for f in node.folded:
            merged.host.setdefault(f.key, merged.nodes[key].key if key in merged.nodes else key)

    def end(key: str) -> str:
        return key if key in merged.nodes else merged.host.get(key, key)

    for graph, fresh in ((after, ADDED), (before, DROPPED)):
        other = before if graph is after else after
        for edge in graph.edges.values():
            tail, head = end(edge.tail), end(edge.head)
            if tail == head:
                continue
            status = KEPT if edge.key in other.edges else fresh
            item = Edge(tail, head, edge.blob, edge.shape, status)
            merged.edges.setdefault(item.key, item)
    return merged
