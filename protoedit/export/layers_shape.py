"""Mappings of the layers that move, join, cut or reduce values: Input, Split, Dropout,
Silence, Concat, Slice, Reshape, Flatten, Crop, Eltwise, Tile, Reduction, Permute,
Softmax, ArgMax, Parameter, Embed."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from protoedit.export.mapping import Layer, LayerRefused, Shape, axis_of, mapping


@mapping("Input")
def _input(layer: Layer) -> list[str]:
    return list(layer.inputs)  # the graph inputs themselves (see graph.py)


@mapping("Split", alias=True)
def _split(layer: Layer) -> list[str]:
    """Caffe's copy of a blob for each consumer: the same ONNX value."""
    return [layer.inputs[0]] * len(layer.outputs)


@mapping("Dropout", alias=True)
def _dropout(layer: Layer) -> list[str]:
    """Identity in the TEST phase (Caffe scales at training time, not at test time); the
    Bayesian SegNet fork's ``sample_weights_test`` samples at test time too: refused."""
    if getattr(layer.param, "sample_weights_test", False):
        raise LayerRefused("sample_weights_test drops units at random at test time")
    return [layer.inputs[0]]


@mapping("Silence")
def _silence(layer: Layer) -> list[str]:
    return []


@mapping("Concat")
def _concat(layer: Layer) -> list[str]:
    p = layer.param
    rank = len(layer.shapes[0])
    axis = axis_of(
        p.axis if p.HasField("axis") else p.concat_dim if p.HasField("concat_dim") else 1, rank
    )
    if len(layer.inputs) == 1:
        return [layer.one("Identity", layer.inputs)]
    return [layer.one("Concat", layer.inputs, axis=axis)]


@mapping("Slice")
def _slice(layer: Layer) -> list[str]:
    """Pieces between ``slice_point``s along ``axis`` (equal pieces without them)."""
    p = layer.param
    shape = layer.shapes[0]
    axis = axis_of(
        p.axis if p.HasField("axis") else p.slice_dim if p.HasField("slice_dim") else 1, len(shape)
    )
    tops = len(layer.outputs)
    size = shape[axis]
    if len(p.slice_point):
        points = [0, *p.slice_point, size]
    else:
        if size % tops:
            raise LayerRefused(f"{size} entries do not split evenly into {tops} tops")
        points = [size * i // tops for i in range(tops + 1)]
    sizes = [b - a for a, b in itertools.pairwise(points)]
    if len(sizes) != tops or min(sizes) <= 0:
        raise LayerRefused(
            f"slice points {list(p.slice_point)} do not split {size} entries into {tops}"
        )
    if tops == 1:
        return [layer.one("Identity", layer.inputs)]
    split = layer.graph.ints(sizes, layer.hint("split"))
    return layer.graph.node(
        "Split", [layer.inputs[0], split], layer.hint("split"), layer.outputs, axis=axis
    )


@mapping("Reshape")
def _reshape(layer: Layer) -> list[str]:
    """Caffe's 0 copies the input axis at the same place, -1 is inferred: ONNX's rules, once
    ``axis``/``num_axes`` are applied (axes outside the span are copied or fixed)."""
    p = layer.param
    shape = layer.shapes[0]
    start = axis_of(p.axis, len(shape) + 1)
    end = len(shape) if p.num_axes == -1 else start + int(p.num_axes)
    dims = [int(d) for d in p.shape.dim]
    # Axes after the span keep their size: copied when they stay at their index, else fixed.
    same_place = start + len(dims) == end
    tail = [0] * (len(shape) - end) if same_place else list(shape[end:])
    target = [0] * start + dims + tail
    return [layer.graph.reshape(layer.inputs[0], target, layer.name, layer.outputs[0])]


@mapping("Flatten")
def _flatten(layer: Layer) -> list[str]:
    """Axes ``axis`` to ``end_axis`` merged into one; the others kept."""
    p = layer.param
    shape = layer.shapes[0]
    start, end = axis_of(p.axis, len(shape)), axis_of(p.end_axis, len(shape))
    target = [0] * start + [-1] + list(shape[end + 1 :])
    if start == 0:
        target = [math.prod(shape[: end + 1]), *shape[end + 1 :]]
    return [layer.graph.reshape(layer.inputs[0], target, layer.name, layer.outputs[0])]


@mapping("Crop")
def _crop(layer: Layer) -> list[str]:
    """Axes from ``axis`` on cut to the second bottom's size, from ``offset`` (one for all,
    or one per axis)."""
    p = layer.param
    if len(layer.inputs) != 2:
        raise LayerRefused("Crop needs two bottoms")
    big, small = layer.shapes
    axis = axis_of(p.axis, len(big))
    offsets = [int(o) for o in p.offset]
    axes = list(range(axis, len(big)))
    if len(offsets) > 1 and len(offsets) != len(axes):
        raise LayerRefused(f"{len(offsets)} offsets for {len(axes)} cropped axes")
    starts = [
        offsets[0] if len(offsets) == 1 else offsets[i] if offsets else 0 for i in range(len(axes))
    ]
    ends = [s + small[a] for s, a in zip(starts, axes, strict=True)]
    g = layer.graph
    inputs = [
        layer.inputs[0],
        g.ints(starts, layer.hint("starts")),
        g.ints(ends, layer.hint("ends")),
        g.ints(axes, layer.hint("axes")),
    ]
    return [layer.one("Slice", inputs)]


@mapping("Eltwise")
def _eltwise(layer: Layer) -> list[str]:
    """PROD, SUM (each input times its ``coeff``: Inception-ResNet's scaled residuals) or MAX."""
    p = layer.param
    g = layer.graph
    op = int(p.operation)
    if op == 0:
        return [_chain(layer, "Mul", layer.inputs)]
    if op == 2:
        return [layer.one("Max", layer.inputs)]
    coeffs = list(p.coeff)
    if coeffs and len(coeffs) != len(layer.inputs):
        raise LayerRefused(f"{len(coeffs)} coefficients for {len(layer.inputs)} inputs")
    if not coeffs or all(c == 1 for c in coeffs):
        return [_chain(layer, "Add", layer.inputs)]
    terms = [
        x
        if c == 1
        else g.one("Mul", [x, g.const(c, layer.hint(f"coeff{k}"))], layer.hint(f"term{k}"))
        for k, (x, c) in enumerate(zip(layer.inputs, coeffs, strict=True))
    ]
    return [_chain(layer, "Add", terms)]


def _chain(layer: Layer, op: str, terms: list[str]) -> str:
    """``terms`` combined left to right, as Caffe accumulates them."""
    if len(terms) == 1:
        return layer.one("Identity", terms)
    acc = terms[0]
    for k, term in enumerate(terms[1:], 1):
        acc = layer.graph.one(
            op,
            [acc, term],
            layer.hint(f"{op.lower()}{k}"),
            layer.outputs[0] if k == len(terms) - 1 else None,
        )
    return acc


def _tile_shape(p: Any, ins: list[Shape], tops: int) -> list[Shape]:
    out = list(ins[0])
    out[axis_of(p.axis, len(out))] *= int(p.tiles)
    return [out]


@mapping("Tile", shape=_tile_shape)
def _tile(layer: Layer) -> list[str]:
    p = layer.param
    axis = axis_of(p.axis, len(layer.shapes[0]))
    repeats = [1] * len(layer.shapes[0])
    repeats[axis] = int(p.tiles)
    return [layer.one("Tile", [layer.inputs[0], layer.graph.ints(repeats, layer.hint("repeats"))])]


_REDUCTIONS = {1: "ReduceSum", 2: "ReduceL1", 3: "ReduceSumSquare", 4: "ReduceMean"}


@mapping("Reduction")
def _reduction(layer: Layer) -> list[str]:
    """SUM, ASUM, SUMSQ or MEAN over every axis from ``axis`` on, times ``coeff``."""
    p = layer.param
    rank = len(layer.shapes[0])
    axis = axis_of(p.axis, rank)
    g = layer.graph
    op = _REDUCTIONS[int(p.operation)]
    if axis == rank:
        raise LayerRefused("nothing to reduce")
    out = None if p.coeff != 1 else layer.outputs[0]
    if axis == 0:
        flat = g.reshape(layer.inputs[0], [1, -1], layer.hint("all"))
        reduced = g.reduce(op, flat, [1], layer.hint("reduce"), keepdims=0)
        reduced = g.reshape(reduced, [], layer.hint("scalar"), out)
    else:
        reduced = g.reduce(
            op, layer.inputs[0], list(range(axis, rank)), layer.hint("reduce"), keepdims=0
        )
        if out is not None:
            reduced = layer.one("Identity", [reduced])
    if p.coeff == 1:
        return [reduced]
    return [layer.one("Mul", [reduced, g.const(p.coeff, layer.hint("coeff"))])]


def _permutation(p: Any, rank: int) -> list[int]:
    order = [int(o) for o in p.order]
    return order + [a for a in range(rank) if a not in order]


@mapping("Permute", shape=lambda p, ins, tops: [[ins[0][a] for a in _permutation(p, len(ins[0]))]])
def _permute(layer: Layer) -> list[str]:
    """SSD's axis permutation; axes ``order`` leaves out follow in their order."""
    return [
        layer.one("Transpose", layer.inputs, perm=_permutation(layer.param, len(layer.shapes[0])))
    ]


@mapping("Softmax")
def _softmax(layer: Layer) -> list[str]:
    axis = axis_of(layer.param.axis, len(layer.shapes[0]))
    return [layer.one("Softmax", layer.inputs, axis=axis)]


def _argmax_shape(p: Any, ins: list[Shape], tops: int) -> list[Shape]:
    shape = ins[0]
    if p.HasField("axis"):
        out = list(shape)
        out[axis_of(p.axis, len(shape))] = int(p.top_k)
        return [out]
    return [[shape[0], 2 if p.out_max_val else 1, int(p.top_k)]]


@mapping("ArgMax", shape=_argmax_shape)
def _argmax(layer: Layer) -> list[str]:
    """The ``top_k`` indices (as floats) or values along ``axis``; without an axis, over each
    sample, with the values after the indices when ``out_max_val``."""
    p = layer.param
    g = layer.graph
    shape = layer.shapes[0]
    k = g.ints([int(p.top_k)], layer.hint("k"))
    if p.HasField("axis"):
        axis = axis_of(p.axis, len(shape))
        values, indices = g.node("TopK", [layer.inputs[0], k], layer.hint("topk"), 2, axis=axis)
        if p.out_max_val:
            return [layer.one("Identity", [values])]
        return [layer.one("Cast", [indices], to=1)]
    flat = g.one("Flatten", [layer.inputs[0]], layer.hint("flat"), axis=1)
    values, indices = g.node("TopK", [flat, k], layer.hint("topk"), 2, axis=1)
    index = g.one("Cast", [indices], layer.hint("index"), to=1)
    rows = [index, values] if p.out_max_val else [index]
    rows = [g.reshape(r, [0, 1, int(p.top_k)], layer.hint(f"row{n}")) for n, r in enumerate(rows)]
    if len(rows) == 1:
        return [layer.one("Identity", rows)]
    return [layer.one("Concat", rows, axis=1)]


@mapping(
    "Parameter",
    params=lambda p, ins: [[int(d) for d in p.shape.dim]],
    shape=lambda p, ins, tops: [[int(d) for d in p.shape.dim]],
    init="normal",
)
def _parameter(layer: Layer) -> list[str]:
    """The layer's blob as a constant."""
    return [layer.one("Identity", [layer.blob(0, "value")])]


def _embed_params(p: Any, ins: list[Shape]) -> list[Shape]:
    weight = [int(p.input_dim), int(p.num_output)]
    return [weight, [int(p.num_output)]] if p.bias_term else [weight]


@mapping(
    "Embed",
    params=_embed_params,
    shape=lambda p, ins, tops: [[*ins[0], int(p.num_output)]],
    init="normal",
)
def _embed(layer: Layer) -> list[str]:
    """Rows of the weight picked by the (float) indices of the input."""
    g = layer.graph
    index = g.one("Cast", [layer.inputs[0]], layer.hint("index"), to=7)
    rows = g.one(
        "Gather",
        [layer.blob(0, "weight"), index],
        layer.hint("rows"),
        None if layer.param.bias_term else layer.outputs[0],
        axis=0,
    )
    if not layer.param.bias_term:
        return [rows]
    return [layer.one("Add", [rows, layer.blob(1, "bias")])]


# Used by the random weights: Embed's indices must stay in range.
EMBED_INDEX = np.int64
