"""Static shape inference: the blob shapes Caffe would compute, from layer parameters alone.

Covers the layers deploy nets are made of (Input, Convolution, Deconvolution, Pooling,
InnerProduct, Concat, Eltwise, Flatten, Reshape, Slice, Crop, Reduction and the layers that
keep their input's shape).  A value whose shape depends on a layer not covered is ``None``,
and so is everything computed from it: callers then ask the user, they do not guess.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from protoedit.net.view import INPUT, BlobVersion, NetView

Shape = list[int]

#: Layers whose (first) output has their first input's shape.
SAME_SHAPE = frozenset(
    """ReLU PReLU ELU Sigmoid TanH AbsVal BNLL Power Exp Log Swish Clip Threshold Dropout
    BatchNorm Scale Bias LRN MVN Softmax Split Eltwise""".split()  # noqa: SIM905
)


def _spatial(values: Any, single: int, h: int, w: int, axes: int, default: int) -> list[int]:
    """Per-spatial-axis values from Caffe's repeated field plus its _h/_w variants."""
    if h or w:
        return [h, w]
    items = list(values)
    if not items:
        return [single or default] * axes if single else [default] * axes
    return items * axes if len(items) == 1 else items


def _conv(param: Any, shape: Shape, deconv: bool) -> Shape:
    axes = len(shape) - 2
    kernel = _spatial(param.kernel_size, 0, param.kernel_h, param.kernel_w, axes, 0)
    pad = _spatial(param.pad, 0, param.pad_h, param.pad_w, axes, 0)
    stride = _spatial(param.stride, 0, param.stride_h, param.stride_w, axes, 1)
    dilation = list(param.dilation) * axes if len(param.dilation) == 1 else list(param.dilation)
    dilation = dilation or [1] * axes
    out = []
    for size, k, p, s, d in zip(shape[2:], kernel, pad, stride, dilation, strict=True):
        extent = d * (k - 1) + 1
        out.append(s * (size - 1) + extent - 2 * p if deconv else (size + 2 * p - extent) // s + 1)
    return [shape[0], int(param.num_output), *out]


def _pool(param: Any, shape: Shape) -> Shape:
    if param.global_pooling:
        return [*shape[:2], 1, 1]
    kh, kw = (param.kernel_h, param.kernel_w) if param.kernel_h else (param.kernel_size,) * 2
    ph, pw = (param.pad_h, param.pad_w) if param.pad_h or param.pad_w else (param.pad,) * 2
    sh, sw = (param.stride_h, param.stride_w) if param.stride_h else (param.stride,) * 2
    floor = param.HasField("round_mode") and param.round_mode == 1  # FLOOR
    out = []
    for size, k, p, s in ((shape[2], kh, ph, sh), (shape[3], kw, pw, sw)):
        steps = (size + 2 * p - k) / s
        n = (math.floor(steps) if floor else math.ceil(steps)) + 1
        if p and (n - 1) * s >= size + p:
            n -= 1  # the last window must start inside the image (Caffe's rule)
        out.append(int(n))
    return [*shape[:2], *out]


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _reshape(param: Any, shape: Shape) -> Shape | None:
    start = _axis(param.axis, len(shape) + 1) if param.axis < 0 else param.axis
    end = len(shape) if param.num_axes == -1 else start + param.num_axes
    dims = list(param.shape.dim)
    new = [shape[start + i] if d == 0 else d for i, d in enumerate(dims)]
    result = shape[:start] + new + shape[end:]
    if -1 in result:
        known = math.prod(d for d in result if d != -1)
        result[result.index(-1)] = math.prod(shape) // known if known else 0
    return result


def _layer_shapes(info: Any, ins: list[Shape]) -> list[Shape | None]:
    """Output shapes of one layer from its input shapes (None where not covered)."""
    kind, param, tops = info.type, info.param, len(info.writes)
    if kind == "Input":
        shapes = [list(s.dim) for s in param.input_param.shape]
        return [shapes[i] if len(shapes) > 1 else shapes[0] for i in range(tops)]
    if not ins:
        return [None] * tops
    first = ins[0]
    if kind in SAME_SHAPE:
        return [list(first) for _ in range(tops)]
    if kind in ("Convolution", "Deconvolution"):
        return [_conv(param.convolution_param, first, kind == "Deconvolution")]
    if kind == "Pooling":
        return [_pool(param.pooling_param, first)] * tops
    if kind == "InnerProduct":
        axis = _axis(param.inner_product_param.axis, len(first))
        return [[*first[:axis], int(param.inner_product_param.num_output)]]
    if kind == "Concat":
        concat = param.concat_param
        axis = _axis(concat.axis if concat.HasField("axis") else concat.concat_dim or 1, len(first))
        out = list(first)
        out[axis] = sum(s[axis] for s in ins)
        return [out]
    if kind == "Flatten":
        start = _axis(param.flatten_param.axis, len(first))
        end = _axis(param.flatten_param.end_axis, len(first))
        return [[*first[:start], math.prod(first[start : end + 1]), *first[end + 1 :]]]
    if kind == "Reshape":
        return [_reshape(param.reshape_param, first)]
    if kind == "Slice":
        axis = _axis(param.slice_param.axis, len(first))
        points = [0, *param.slice_param.slice_point, first[axis]]
        if len(points) == 2:
            points = [first[axis] * i // tops for i in range(tops + 1)]
        return [[*first[:axis], b - a, *first[axis + 1 :]] for a, b in itertools.pairwise(points)]
    if kind == "Crop" and len(ins) == 2:
        axis = _axis(param.crop_param.axis, len(first))
        return [[*first[:axis], *ins[1][axis:]]]
    if kind == "Reduction":
        return [first[: _axis(param.reduction_param.axis, len(first))]]
    return [None] * tops


def infer_shapes(view: NetView) -> dict[BlobVersion, Shape | None]:
    """The shape of every value in the net (``None`` where it cannot be known statically)."""
    shapes: dict[BlobVersion, Shape | None] = {}
    header = header_shapes(view.doc.message)
    for info in view.layers:
        ins = [
            shapes.get(read) if read.producer != INPUT else header.get(read.blob)
            for read in info.reads
        ]
        known = [s for s in ins if s is not None]
        outs = _layer_shapes(info, known) if len(known) == len(ins) else [None] * len(info.writes)
        for version, shape in zip(info.writes, outs, strict=False):
            shapes[version] = shape
    return shapes


def legacy_input_shapes(net: Any) -> list[Shape]:
    """The shapes a legacy header declares, one per ``input:`` (as Caffe's ``UpgradeNetInput``
    reads them): the ``input_shape`` entries, else ``input_dim`` in groups of four."""
    if len(net.input_shape):
        return [list(shape.dim) for shape in net.input_shape]
    dims = list(net.input_dim)
    return [dims[4 * i : 4 * i + 4] for i in range(len(net.input))] if dims else []


def header_shapes(net: Any) -> dict[str, Shape]:
    """Shapes declared by a legacy ``input:`` header, by input name."""
    return dict(zip(net.input, legacy_input_shapes(net), strict=False))
