"""Receptive fields: which input pixels a unit of each blob sees, without Caffe.

Along each spatial axis a blob's field is three numbers: ``size`` (how many input pixels a
unit sees), ``stride`` (how far apart in the input two neighbouring units' fields start: the
jump) and ``offset`` (where the field of unit 0 starts; negative in the padding).  Unit ``u``
sees input pixels ``offset + u·stride`` to ``offset + u·stride + size - 1`` (clip to the
image: padding and Caffe's clipped last pooling window see nothing outside it).  The rule of
each layer type is named in the catalogue (:func:`protoedit.net.layers.summary_rules`); a
blob after a layer without a rule has no field, with the reason, never a guess.

A blob made by a merge (Concat, Eltwise) has the union of its inputs' fields: the pixels a
unit at that position sees in any channel.  A blob without spatial axes (InnerProduct,
Flatten) sees its whole input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from protoedit.errors import InputError, InvalidArgumentError
from protoedit.net.layers import summary_rules
from protoedit.net.shapes import Shape, conv_window, forward_shapes, pool_window
from protoedit.net.view import INPUT, BlobVersion, LayerInfo, NetView

if TYPE_CHECKING:
    from protoedit.document import Document


@dataclass(frozen=True)
class Box:
    """A half-open box of input pixels: ``begin`` to ``end`` (excluded) on each spatial axis."""

    begin: tuple[int, ...]
    end: tuple[int, ...]

    @property
    def slices(self) -> tuple[slice, ...]:
        """The box as slices of the spatial axes (``image[..., *box.slices]`` crops it)."""
        return tuple(slice(b, e) for b, e in zip(self.begin, self.end, strict=True))

    @property
    def size(self) -> tuple[int, ...]:
        """The extent on each axis."""
        return tuple(e - b for b, e in zip(self.begin, self.end, strict=True))

    def within(self, other: Box) -> Box:
        """This box clipped to ``other`` (empty boxes keep ``begin == end``)."""
        begin = [
            min(max(b, lo), hi)
            for b, lo, hi in zip(self.begin, other.begin, other.end, strict=True)
        ]
        end = [
            min(max(e, lo), hi) for e, lo, hi in zip(self.end, other.begin, other.end, strict=True)
        ]
        return Box(tuple(begin), tuple(end))


@dataclass(frozen=True)
class ReceptiveField:
    """The field of a blob's units with respect to the input blob ``input``, per spatial axis
    (height, width for images).  ``reach`` is what any unit of the blob can see (the image,
    less what a Crop cut away), when the input's extent is known: boxes are clipped to it."""

    input: str
    size: tuple[int, ...]
    stride: tuple[int, ...]
    offset: tuple[int, ...]
    reach: Box | None = None

    def box(self, *unit: int, clip: bool = True) -> Box:
        """The input pixels unit ``(y, x)`` (one index per spatial axis) sees; clipped to the
        image (:attr:`reach`) unless ``clip=False`` (then it may reach into the padding)."""
        if len(unit) != len(self.size):
            raise InputError(f"a unit has {len(self.size)} spatial indices here, got {len(unit)}")
        begin = [o + u * s for o, u, s in zip(self.offset, unit, self.stride, strict=True)]
        end = [b + n for b, n in zip(begin, self.size, strict=True)]
        box = Box(tuple(begin), tuple(end))
        return box.within(self.reach) if clip and self.reach is not None else box

    def center(self, *unit: int) -> tuple[float, ...]:
        """The centre of unit ``(y, x)``'s field in input coordinates (not clipped)."""
        return tuple(
            o + u * s + (n - 1) / 2
            for o, u, s, n in zip(self.offset, unit, self.stride, self.size, strict=True)
        )

    def _axes(self, size: list[int], stride: list[int], offset: list[int]) -> ReceptiveField:
        return ReceptiveField(self.input, tuple(size), tuple(stride), tuple(offset), self.reach)

    def window(
        self, kernel: list[int], stride: list[int], pad: list[int], dilation: list[int]
    ) -> ReceptiveField:
        """After a sliding window (convolution, pooling)."""
        axes = zip(self.size, self.stride, self.offset, kernel, stride, pad, dilation, strict=True)
        rows = [(n + d * (k - 1) * j, j * s, o - p * j) for n, j, o, k, s, p, d in axes]
        return self._axes(*map(list, zip(*rows, strict=True)))

    def whole(self, spatial: list[int]) -> ReceptiveField:
        """After a layer whose one unit sees every position of an input of ``spatial`` size."""
        size = [n + (e - 1) * j for n, j, e in zip(self.size, self.stride, spatial, strict=True)]
        stride = [j * e for j, e in zip(self.stride, spatial, strict=True)]
        return self._axes(size, stride, list(self.offset))


#: What the field computation says of a value: its field, ``None`` when the value does not
#: depend on the input, or the reason it is unknown.
Field = ReceptiveField | str | None


class _NoRule(Exception):
    """A layer's field cannot be told (the message says why)."""


def _union(fields: list[ReceptiveField]) -> ReceptiveField:
    """The field that covers each of ``fields`` (which must move with the same stride)."""
    first = fields[0]
    if any(f.stride != first.stride or len(f.size) != len(first.size) for f in fields):
        raise _NoRule("its inputs' fields move with different strides")
    begin = [min(f.offset[a] for f in fields) for a in range(len(first.size))]
    end = [max(f.offset[a] + f.size[a] for f in fields) for a in range(len(first.size))]
    size = [e - b for b, e in zip(begin, end, strict=True)]
    return first._axes(size, list(first.stride), begin)


def _param(info: LayerInfo, field: str) -> Any:
    message = getattr(info.param, field, None)
    if message is None:
        raise _NoRule(f"the schema lacks {field}")
    return message


def _spatial_of(shape: Shape | None, field: ReceptiveField, name: str) -> list[int]:
    if shape is None or len(shape) != len(field.size) + 2:
        raise _NoRule(f"the spatial shape of its input '{name}' is unknown")
    return list(shape[2:])


def _layer_fields(
    info: LayerInfo, ins: list[Field], shapes: list[Shape | None], rule: str
) -> list[Field]:
    """The fields of one layer's tops from its bottoms' (some known), by the type's rule."""
    tops = len(info.writes)
    known = [f for f in ins if isinstance(f, ReceptiveField)]
    first = ins[0] if ins else None
    if rule == "window":
        if info.type == "Pooling":
            pool = _param(info, "pooling_param")
            if not isinstance(first, ReceptiveField):
                return [first] * tops
            if pool.global_pooling:
                return [first.whole(_spatial_of(shapes[0], first, info.reads[0].blob))] * tops
            kernel, stride, pad = pool_window(pool)
            return [first.window(kernel, stride, pad, [1, 1])] * tops
        conv = _param(info, "convolution_param")
        out: list[Field] = []
        for field in ins:  # a convolution with several bottoms convolves each into its top
            if isinstance(field, ReceptiveField):
                field = field.window(*conv_window(conv, len(field.size)))
            out.append(field)
        return out
    if rule == "deconv":
        conv = _param(info, "convolution_param")
        out = []
        for field in ins:
            if isinstance(field, ReceptiveField):
                kernel, stride, pad, dilation = conv_window(conv, len(field.size))
                if any(s != 1 for s in stride):
                    raise _NoRule("a Deconvolution with a stride has no uniform field")
                spans = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
                field = field._axes(
                    [n + e * j for n, e, j in zip(field.size, spans, field.stride, strict=True)],
                    list(field.stride),
                    [
                        o + (p - e) * j
                        for o, p, e, j in zip(field.offset, pad, spans, field.stride, strict=True)
                    ],
                )
            out.append(field)
        return out
    if not known:
        return [next((f for f in ins if isinstance(f, str)), None)] * tops
    if rule == "crop":
        if not isinstance(first, ReceptiveField):
            return [first] * tops
        crop = _param(info, "crop_param")
        axis = crop.axis + len(first.size) + 2 if crop.axis < 0 else crop.axis
        offsets = list(crop.offset)
        shift = [
            0
            if a < axis
            else (offsets[0] if len(offsets) == 1 else offsets[a - axis] if offsets else 0)
            for a in range(2, len(first.size) + 2)
        ]
        offset = [o + c * j for o, c, j in zip(first.offset, shift, first.stride, strict=True)]
        cropped = first._axes(list(first.size), list(first.stride), offset)
        out_shape = shapes[1] if len(shapes) > 1 else None
        if first.reach is not None and out_shape is not None:
            last = [d - 1 for d in out_shape[2:]]
            seen = Box(
                cropped.box(*([0] * len(last)), clip=False).begin,
                cropped.box(*last, clip=False).end,
            )
            cropped = ReceptiveField(
                first.input, cropped.size, cropped.stride, cropped.offset, seen.within(first.reach)
            )
        return [cropped] * tops
    if rule == "global":
        spread = [  # an input without spatial axes already sees all it can
            f if s is not None and len(s) <= 2 else f.whole(_spatial_of(s, f, r.blob))
            for f, s, r in zip(ins, shapes, info.reads, strict=True)
            if isinstance(f, ReceptiveField)
        ]
        return [_union(spread)] * tops
    if rule == "axis":
        field = _param(info, f"{info.type.lower()}_param")
        axis = field.axis
        if info.type == "Concat" and not field.HasField("axis") and field.concat_dim:
            axis = field.concat_dim
        if axis not in (0, 1, -len(known[0].size) - 2, -len(known[0].size) - 1):
            raise _NoRule(f"it works along spatial axis {axis}")
    elif rule == "lrn":
        lrn = _param(info, "lrn_param")
        if lrn.norm_region == 1:  # WITHIN_CHANNEL: a square window, padded to keep the size
            width, margin = int(lrn.local_size), (int(lrn.local_size) - 1) // 2
            return [_union(known).window([width] * 2, [1, 1], [margin] * 2, [1, 1])] * tops
    elif rule == "normalize":
        norm = _param(info, "norm_param")
        if norm.across_spatial:
            return _layer_fields(info, ins, shapes, "global")
    elif rule != "point":
        raise _NoRule(f"unknown rule {rule!r}")
    return [_union(known)] * tops


def _default_input(view: NetView) -> BlobVersion:
    """The input the fields are measured on: the first header input, else the first top of
    the first layer without bottoms."""
    for name in view.doc.message.input:
        return BlobVersion(name, INPUT)
    for info in view.layers:
        if not info.reads and info.writes:
            return info.writes[0]
    raise InputError("the net has no input to measure receptive fields on")


def field_map(
    view: NetView, shapes: Mapping[BlobVersion, Shape | None], source: str | None = None
) -> tuple[BlobVersion, dict[BlobVersion, Field]]:
    """The input measured on and every value's field (or why there is none), one pass."""
    start = _default_input(view) if source is None else _source(view, source)
    shape = shapes.get(start)
    axes = len(shape) - 2 if shape is not None and len(shape) > 2 else 2
    reach = Box((0,) * axes, tuple(shape[2:])) if shape is not None and len(shape) > 2 else None
    fields: dict[BlobVersion, Field] = {
        start: ReceptiveField(start.blob, (1,) * axes, (1,) * axes, (0,) * axes, reach)
    }
    for info in view.layers:
        ins = [fields.get(r) for r in info.reads]
        if all(f is None for f in ins):
            outs: list[Field] = [None] * len(info.writes)
        else:
            outs = _fields_of(info, ins, [shapes.get(r) for r in info.reads])
        for write, field in zip(info.writes, outs, strict=False):
            if write != start:
                fields[write] = field
    return start, fields


def _fields_of(info: LayerInfo, ins: list[Field], shapes: list[Shape | None]) -> list[Field]:
    """:func:`_layer_fields`, a missing rule or an unknown input given as the reason."""
    reason = next((f for f in ins if isinstance(f, str)), None)
    if reason is not None:
        return [reason] * len(info.writes)
    rule = summary_rules(info.type)[1]
    if rule is None:
        return [f"{info.type} layer '{info.name}' has no receptive-field rule"] * len(info.writes)
    try:
        return _layer_fields(info, ins, shapes, rule)
    except (_NoRule, ValueError) as exc:  # ValueError: the window's own checks
        return [f"{info.type} layer '{info.name}': {exc}"] * len(info.writes)


def _source(view: NetView, name: str) -> BlobVersion:
    """The input blob called ``name``."""
    if name in view.doc.message.input:
        return BlobVersion(name, INPUT)
    for info in view.layers:
        if not info.reads:
            for write in info.writes:
                if write.blob == name:
                    return write
    raise InvalidArgumentError(
        f"'{name}' is not an input of the net (a blob no layer computes)", "input"
    )


def view_of(doc: Document, phase: str | None) -> NetView:
    """The view of ``doc`` (upgraded in memory when legacy) for ``phase``."""
    from protoedit.net.state import NetState
    from protoedit.rewrites.upgrade import as_loaded  # upgrade rules sit above net/

    return NetView(as_loaded(doc), NetState(phase) if phase else None)


def receptive_fields(
    doc: Document,
    *,
    input: str | None = None,
    input_shape: Mapping[str, Shape] | None = None,
    phase: str | None = "TEST",
) -> dict[str, ReceptiveField]:
    """The receptive field of every blob that has one, by blob name (its final value), with
    respect to ``input`` (default: the net's first input); ``input_shape`` overrides declared
    input shapes by blob name (the extent only matters for clipping and global layers).
    Blobs without a field are left out: :func:`receptive_field` says why."""
    view = view_of(doc, phase)
    shapes = forward_shapes(view, input_shape)
    _, fields = field_map(view, shapes, input)
    return {
        version.blob: field
        for version in view.final.values()
        if isinstance(field := fields.get(version), ReceptiveField)
    }


def receptive_field(
    doc: Document,
    target: str,
    *,
    input: str | None = None,
    input_shape: Mapping[str, Shape] | None = None,
    phase: str | None = "TEST",
) -> ReceptiveField:
    """The receptive field of ``target`` (``layer:NAME``, ``blob:NAME`` or a bare name, as
    :meth:`NetView.resolve` reads it); a located :class:`InputError` saying why when it has
    none."""
    view = view_of(doc, phase)
    version = view.resolve(target)
    shapes = forward_shapes(view, input_shape)
    start, fields = field_map(view, shapes, input)
    field = fields.get(version)
    if isinstance(field, ReceptiveField):
        return field
    if field is None:
        raise InputError(f"'{target}' does not depend on the input '{start.blob}'")
    raise InputError(f"'{target}' has no receptive field: {field}")
