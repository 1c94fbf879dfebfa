"""Static shape inference: the blob shapes Caffe would compute, from layer parameters alone.

Covers the layers deploy nets are made of (Input, Convolution, Deconvolution, Pooling,
InnerProduct, Concat, Eltwise, Flatten, Reshape, Slice, Crop, Reduction and the layers that
keep their input's shape): the layer catalogue names each type's rule, :data:`RULES` holds
them.  A value whose shape depends on a layer not covered is ``None``,
and so is everything computed from it: callers then ask the user, they do not guess.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

from protoedit.errors import InputError
from protoedit.net.inputs import header_shapes
from protoedit.net.layers import layer_type
from protoedit.net.view import INPUT, BlobVersion, NetView

Shape = list[int]


class _Problem(ValueError):
    """A layer's parameters do not give a valid shape for its inputs (Caffe would refuse)."""


def _spatial(
    fields: dict[str, Any], what: str, repeated: str, axes: int, default: int
) -> list[int]:
    """Per-spatial-axis values from Caffe's repeated field or its ``_h``/``_w`` pair, which
    wins when either is set (Caffe asks ``has_..._h()``: a fork's schema may give them
    defaults that an unset field must not mean).  ``fields``: the message's set fields."""
    if f"{what}_h" in fields or f"{what}_w" in fields:
        if axes != 2:
            raise _Problem(f"{what}_h/{what}_w need a 4-D input, this one has {axes + 2} axes")
        return [int(fields.get(f"{what}_h", 0)), int(fields.get(f"{what}_w", 0))]
    items = [int(v) for v in fields.get(repeated, ())]
    if not items:
        return [default] * axes
    if len(items) not in (1, axes):
        raise _Problem(f"{what} has {len(items)} values for {axes} spatial axes")
    return items * axes if len(items) == 1 else items


def conv_window(param: Any, axes: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """A convolution's kernel, stride, pad and dilation per spatial axis (``axes`` of them)."""
    fields = {fd.name: value for fd, value in param.ListFields()}
    kernel = _spatial(fields, "kernel", "kernel_size", axes, 0)
    pad = _spatial(fields, "pad", "pad", axes, 0)
    stride = _spatial(fields, "stride", "stride", axes, 1)
    dilation = _spatial(fields, "dilation", "dilation", axes, 1)
    if 0 in kernel or 0 in stride or 0 in dilation:
        raise _Problem("kernel size, stride and dilation must be positive")
    return kernel, stride, pad, dilation


def _conv(param: Any, shape: Shape, deconv: bool) -> Shape:
    kernel, stride, pad, dilation = conv_window(param, len(shape) - 2)
    out = []
    for size, k, p, s, d in zip(shape[2:], kernel, pad, stride, dilation, strict=True):
        extent = d * (k - 1) + 1
        out.append(s * (size - 1) + extent - 2 * p if deconv else (size + 2 * p - extent) // s + 1)
    return [shape[0], int(param.num_output), *out]


def pool_window(param: Any) -> tuple[list[int], list[int], list[int]]:
    """A (not global) pooling's kernel, stride and pad on its two spatial axes."""
    has = param.HasField
    kh, kw = (param.kernel_size,) * 2 if has("kernel_size") else (param.kernel_h, param.kernel_w)
    ph, pw = (param.pad_h, param.pad_w) if has("pad_h") else (param.pad,) * 2
    sh, sw = (param.stride_h, param.stride_w) if has("stride_h") else (param.stride,) * 2
    if 0 in (kh, kw, sh, sw):
        raise _Problem("kernel size and stride must be positive")
    return [kh, kw], [sh, sw], [ph, pw]


def _pool(param: Any, shape: Shape) -> Shape:
    if len(shape) != 4:
        raise _Problem(f"pooling needs a 4-D input, this one has {len(shape)} axes")
    if param.global_pooling:
        return [*shape[:2], 1, 1]
    (kh, kw), (sh, sw), (ph, pw) = pool_window(param)
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
    """Caffe's ``CanonicalAxisIndex``: a negative axis counts from the end."""
    if not -rank <= axis < rank:
        raise _Problem(f"axis {axis} is out of range for a {rank}-D input")
    return axis + rank if axis < 0 else axis


def _reshape(param: Any, shape: Shape) -> Shape | None:
    start = _axis(param.axis, len(shape) + 1)
    end = len(shape) if param.num_axes == -1 else start + param.num_axes
    if end > len(shape):
        raise _Problem(f"axis {param.axis} and num_axes {param.num_axes} pass the input's end")
    dims = list(param.shape.dim)
    if dims.count(-1) > 1:
        raise _Problem("at most one dimension can be -1")
    if any(start + i >= len(shape) for i, d in enumerate(dims) if d == 0):
        raise _Problem("a 0 (copy) dimension has no input axis to copy")
    new = [shape[start + i] if d == 0 else d for i, d in enumerate(dims)]
    result = shape[:start] + new + shape[end:]
    if -1 in result:
        known = math.prod(d for d in result if d != -1)
        if not known or math.prod(shape) % known:
            raise _Problem(f"{math.prod(shape)} values do not reshape to {new}")
        result[result.index(-1)] = math.prod(shape) // known
    if math.prod(result) != math.prod(shape):
        raise _Problem(f"{math.prod(shape)} values do not reshape to {new}")
    return result


def _slice(param: Any, first: Shape, tops: int) -> list[Shape | None]:
    axis = _axis(param.axis, len(first))
    size = first[axis]
    if len(param.slice_point):
        if len(param.slice_point) != tops - 1:
            raise _Problem(f"{len(param.slice_point)} slice points for {tops} tops")
        points = [0, *param.slice_point, size]
        if any(b <= a for a, b in itertools.pairwise(points)):
            raise _Problem(f"slice points {list(param.slice_point)} do not split {size} entries")
    else:
        if size % tops:
            raise _Problem(f"{size} entries do not split evenly into {tops} tops")
        points = [size * i // tops for i in range(tops + 1)]
    return [[*first[:axis], b - a, *first[axis + 1 :]] for a, b in itertools.pairwise(points)]


def _input(param: Any, ins: list[Shape], tops: int) -> list[Shape | None]:
    shapes = [list(s.dim) for s in param.shape]
    if not shapes:
        return [None] * tops  # Caffe leaves the tops unshaped: the caller reshapes them
    if len(shapes) not in (1, tops):
        raise _Problem(f"{len(shapes)} shapes for {tops} tops")
    return [shapes[i] if len(shapes) > 1 else shapes[0] for i in range(tops)]


def _same(param: Any, ins: list[Shape], tops: int) -> list[Shape | None]:
    return [list(ins[0]) for _ in range(tops)]


def _concat(param: Any, ins: list[Shape], tops: int) -> list[Shape | None]:
    first = ins[0]
    axis = _axis(param.axis if param.HasField("axis") else param.concat_dim or 1, len(first))
    rest = first[:axis] + first[axis + 1 :]
    if any(len(s) != len(first) or s[:axis] + s[axis + 1 :] != rest for s in ins):
        raise _Problem(f"inputs {ins} differ outside the concat axis {axis}")
    out = list(first)
    out[axis] = sum(s[axis] for s in ins)
    return [out]


def _flatten(param: Any, ins: list[Shape], tops: int) -> list[Shape | None]:
    first = ins[0]
    start, end = _axis(param.axis, len(first)), _axis(param.end_axis, len(first))
    return [[*first[:start], math.prod(first[start : end + 1]), *first[end + 1 :]]]


def _crop(param: Any, ins: list[Shape], tops: int) -> list[Shape | None]:
    if len(ins) != 2:
        return [None] * tops
    axis = _axis(param.axis, len(ins[0]))
    offsets = list(param.offset)
    axes = len(ins[0]) - axis
    if len(offsets) > 1 and len(offsets) != axes:
        raise _Problem(f"{len(offsets)} offsets for the {axes} cropped axes")
    for i in range(axis, len(ins[0])):
        offset = offsets[0] if len(offsets) == 1 else offsets[i - axis] if offsets else 0
        if ins[0][i] - offset < ins[1][i]:
            raise _Problem(
                f"axis {i} of {ins[0][i]} cannot give {ins[1][i]} entries from offset {offset}"
            )
    return [[*ins[0][:axis], *ins[1][axis:]]]


def _inner_product(param: Any, ins: list[Shape], tops: int) -> list[Shape | None]:
    axis = _axis(param.axis, len(ins[0]))
    return [[*ins[0][:axis], int(param.num_output)]]


def _permute(param: Any, ins: list[Shape], tops: int) -> list[Shape | None]:
    """SSD's Permute: the listed axes first, then the others in their order."""
    order = [_axis(int(a), len(ins[0])) for a in param.order]
    if len(set(order)) != len(order):
        raise _Problem(f"order {list(param.order)} repeats an axis")
    order += [a for a in range(len(ins[0])) if a not in order]
    return [[ins[0][a] for a in order]]


def _prior_box(param: Any, ins: list[Shape], tops: int) -> list[Shape | None]:
    """SSD's PriorBox: ``1 x 2 x (H·W·priors·4)`` for the first input's H x W, where the
    priors are each min size times each aspect ratio (1 first, then each new ratio, and its
    inverse with ``flip``) plus one per max size."""
    ratios = [1.0]
    for ratio in param.aspect_ratio:
        if all(abs(ratio - r) >= 1e-6 for r in ratios):
            ratios += [ratio, 1 / ratio] if param.flip else [ratio]
    if not len(param.min_size):
        raise _Problem("PriorBox needs a min_size")
    priors = len(ratios) * len(param.min_size) + len(param.max_size)
    return [[1, 2, ins[0][2] * ins[0][3] * priors * 4]]


#: Shape rules by the name the layer catalogue gives (:mod:`protoedit.net.layers`): each
#: takes the layer's ``*_param`` message, the input shapes and the number of tops.
RULES: dict[str, Callable[[Any, list[Shape], int], list[Shape | None]]] = {
    "input": _input,
    "same": _same,
    "conv": lambda p, ins, tops: [_conv(p, ins[0], deconv=False)],
    "deconv": lambda p, ins, tops: [_conv(p, ins[0], deconv=True)],
    "pool": lambda p, ins, tops: [_pool(p, ins[0])] * tops,
    "inner_product": _inner_product,
    "concat": _concat,
    "flatten": _flatten,
    "reshape": lambda p, ins, tops: [_reshape(p, ins[0])],
    "slice": lambda p, ins, tops: _slice(p, ins[0], tops),
    "crop": _crop,
    "reduction": lambda p, ins, tops: [ins[0][: _axis(p.axis, len(ins[0]))]],
    "permute": _permute,
    "prior_box": _prior_box,
    "second": lambda p, ins, tops: [list(ins[1])],
}
#: Rules whose outputs have no empty axis (Caffe checks it).
_POSITIVE = ("conv", "deconv", "pool")


def _rule(kind: str) -> tuple[str | None, str | None]:
    """The shape rule of a layer type and the ``*_param`` field it reads."""
    entry = layer_type(kind)
    return (entry.shape, entry.param_field) if entry is not None else (None, None)


def _layer_shapes(info: Any, ins: list[Shape]) -> list[Shape | None]:
    """Output shapes of one layer from its input shapes (None where not covered)."""
    rule, field = _rule(info.type)
    tops = len(info.writes)
    if rule is None or (not ins and rule != "input"):
        return [None] * tops
    param = getattr(info.param, field, None) if field is not None else None
    if param is None and field is not None and rule != "same":
        return [None] * tops  # the schema lacks the type's parameters (a fork's type)
    return RULES[rule](param, ins, tops)


def layer_shapes(view: NetView, info: Any, ins: list[Shape]) -> list[Shape | None]:
    """:func:`_layer_shapes`, with every failure an :class:`InputError` located at the layer."""
    try:
        outs = _layer_shapes(info, ins)
        least = 1 if _rule(info.type)[0] in _POSITIVE else 0
        bad = next((s for s in outs if s is not None and any(d < least for d in s)), None)
        if bad is not None:
            raise _Problem(f"the output would be {'x'.join(map(str, bad))}")
    except (_Problem, ArithmeticError, IndexError, ValueError, TypeError) as exc:
        inputs = ", ".join("x".join(map(str, s)) for s in ins) or "none"
        raise InputError(
            f"cannot infer the shape of layer '{info.name}' ({info.type}, inputs {inputs}): {exc}",
            view.doc.location(info.pos),
        ) from None
    return outs


class _LazyShapes(dict[BlobVersion, Shape | None]):
    """Shapes inferred on first look-up, of the asked value's ancestors only: a value does
    not depend on a broken or unknown layer elsewhere in the net."""

    def __init__(self, view: NetView) -> None:
        super().__init__()
        self.view = view
        self.header = header_shapes(view.doc.message)
        self.done: set[int] = set()

    def _infer(self, version: BlobVersion) -> None:
        for index in sorted(self.view.ancestors([version]) - self.done):
            info = self.view.by_index[index]
            ins = [
                self.header.get(r.blob) if r.producer == INPUT else dict.get(self, r)
                for r in info.reads
            ]
            known = [s for s in ins if s is not None]
            if len(known) == len(ins):
                outs = layer_shapes(self.view, info, known)
            else:
                outs = [None] * len(info.writes)
            for write, shape in zip(info.writes, outs, strict=False):
                dict.__setitem__(self, write, shape)
            self.done.add(index)

    def __missing__(self, version: BlobVersion) -> Shape | None:
        if version.producer == INPUT:
            return self.header.get(version.blob)
        if version.producer not in self.view.by_index:
            raise KeyError(version)
        self._infer(version)
        return dict.get(self, version)

    def get(self, version: BlobVersion, default: Any = None) -> Any:
        """The shape of ``version`` (inferred now if needed), ``default`` if not in the net."""
        try:
            return self[version]
        except KeyError:
            return default


def infer_shapes(view: NetView) -> dict[BlobVersion, Shape | None]:
    """The shape of each value in the net (``None`` where it cannot be known statically),
    inferred when first asked for.  A layer whose parameters give no valid shape raises a
    located :class:`InputError` ("cannot infer the shape of layer X: ...")."""
    return _LazyShapes(view)


def forward_shapes(
    view: NetView, inputs: Mapping[str, Shape] | None = None
) -> dict[BlobVersion, Shape | None]:
    """Every value's shape, layer by layer in one pass (a whole net at once, where
    :func:`infer_shapes` answers one value at a time); ``inputs`` gives the shape of the
    input blobs it names (a legacy header's, or the tops of a layer without bottoms: Input,
    Data).  ``None`` where a shape cannot be known; a layer whose parameters give no valid
    shape raises as :func:`layer_shapes` does."""
    given = dict(inputs or {})
    header = {**header_shapes(view.doc.message), **given}
    found: dict[BlobVersion, Shape | None] = {}
    for name in view.doc.message.input:
        found[BlobVersion(name, INPUT)] = header.get(name)
    for info in view.layers:
        ins = [found.get(r) if r.producer != INPUT else header.get(r.blob) for r in info.reads]
        known = [s for s in ins if s is not None]
        outs = layer_shapes(view, info, known) if len(known) == len(ins) else []
        for nth, write in enumerate(info.writes):
            shape = given.get(write.blob) if not info.reads else None
            found[write] = shape or (outs[nth] if nth < len(outs) else None)
    return found
