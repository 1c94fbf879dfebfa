"""The smallest spatial extent of a net's inputs at which Caffe runs the net the same way.

A validation verdict (the net loads, forward and backward run, every input gradient is finite
and non-zero) does not depend on how many pixels the inputs have, as long as every layer sees
inputs it accepts and computes with the same parameters.  Running at a fraction of the
declared height and width cuts the work by the square of that fraction.  The extent found here
is statically proved safe from the shape rules of :mod:`protoedit.net.shapes`; anything that
cannot be proved keeps the declared extent, with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from protoedit.errors import InputError
from protoedit.net.inputs import header_shapes
from protoedit.net.layers import ANY_EXTENT, layer_type
from protoedit.net.shapes import Shape, layer_shapes
from protoedit.net.view import INPUT, BlobVersion, LayerInfo, NetView

#: Candidate extents are the declared one times k / STEPS, for k = 1 .. STEPS - 1.
STEPS = 16


@dataclass
class Extent:
    """The input shapes to run a net at, and why they are what they are."""

    shapes: dict[str, Shape]  # input blob -> shape to run at (the declared one if kept)
    declared: dict[str, Shape] = field(default_factory=dict)
    note: str = ""  # why the declared extent was kept ("" when reduced or nothing to reduce)

    @property
    def reduced(self) -> bool:
        """Whether some input runs at less than its declared extent."""
        return self.shapes != self.declared


class _Refused(Exception):
    """A candidate extent Caffe would not run the same way (the message says why)."""


def _inputs(view: NetView) -> dict[str, Shape | None]:
    """Every input blob of the net (legacy header and Input layer tops) with its declared
    shape (None where none is declared)."""
    shapes: dict[str, Shape | None] = dict(header_shapes(view.doc.message))
    for name in view.doc.message.input:
        shapes.setdefault(name, None)
    for info in view.layers:
        if info.type == "Input":
            outs = layer_shapes(view, info, [])
            for write, shape in zip(info.writes, outs, strict=False):
                shapes[write.blob] = shape
    return shapes


def _keeps_parameters(info: LayerInfo, rank: int) -> bool:
    """Whether a layer of the any-extent category runs with the same parameters at any extent.

    Scale and Bias with one input learn a blob shaped like the axes they cover (``axis`` and
    ``num_axes`` on): it does not depend on the extent when those axes end before the spatial
    ones (the channels, a scalar).
    """
    if info.type in ("Scale", "Bias") and len(info.reads) == 1:
        param = info.param.scale_param if info.type == "Scale" else info.param.bias_param
        first = param.axis % rank if rank else 0
        end = rank if param.num_axes == -1 else first + param.num_axes
        return end <= 2
    return True


def _equalities(shapes: list[Shape]) -> set[tuple[int, int, int, int]]:
    """Which axes of which inputs of one layer are equal: (input, axis, input, axis)."""
    return {
        (i, a, j, b)
        for i, first in enumerate(shapes)
        for j, second in enumerate(shapes)
        if i < j
        for a, x in enumerate(first)
        for b, y in enumerate(second)
        if x == y
    }


def _propagate(
    view: NetView, inputs: dict[str, Shape], declared: dict[BlobVersion, Shape] | None
) -> dict[BlobVersion, Shape]:
    """Every value's shape when the inputs have ``inputs``' shapes.

    With ``declared`` (the shapes at the declared extent), refuse what Caffe would not run the
    same way: a layer outside the any-extent category whose inputs change, any-extent layers
    whose parameters depend on the extent, inputs of one layer that were equal on some axes
    and are no longer (Eltwise, Concat, a two-input Scale check those), an empty output.
    """
    shapes: dict[BlobVersion, Shape] = {}
    for info in view.layers:
        if info.type == "Input":
            outs: list[Shape | None] = [inputs.get(w.blob) for w in info.writes]
        else:
            ins = [inputs.get(r.blob) if r.producer == INPUT else shapes.get(r) for r in info.reads]
            if any(shape is None for shape in ins):
                missing = next(r.blob for r, s in zip(info.reads, ins, strict=True) if s is None)
                raise _Refused(f"the shape of '{missing}' (read by layer '{info.name}') is unknown")
            known = [shape for shape in ins if shape is not None]
            if declared is not None:
                _check_layer(info, known, [declared[r] for r in info.reads])
            try:
                outs = layer_shapes(view, info, known)
            except InputError as exc:
                raise _Refused(str(exc)) from None
        for write, shape in zip(info.writes, outs, strict=False):
            if shape is None:
                raise _Refused(
                    f"the output shapes of layer '{info.name}' ({info.type}) cannot be inferred"
                )
            if declared is not None and any(d < 1 for d in shape):
                raise _Refused(f"layer '{info.name}' would have an empty output")
            shapes[write] = shape
    return shapes


def _check_layer(info: LayerInfo, ins: list[Shape], before: list[Shape]) -> None:
    """Refuse a layer that would not run the same way on ``ins`` as on ``before``."""
    if ins == before:
        return
    entry = layer_type(info.type)
    if entry is None or not entry.has(ANY_EXTENT) or not _keeps_parameters(info, len(ins[0])):
        raise _Refused(
            f"layer '{info.name}' ({info.type}) depends on the extent of its inputs "
            f"({' and '.join('x'.join(map(str, s)) for s in before)} as declared)"
        )
    if len(ins) > 1 and not _equalities(before) <= _equalities(ins):
        raise _Refused(f"the inputs of layer '{info.name}' ({info.type}) would no longer match")


def _scaled(shape: Shape, k: int) -> Shape:
    """``shape`` with every axis after the first two scaled by k / STEPS (at least 1)."""
    return [*shape[:2], *(max(1, math.ceil(d * k / STEPS)) for d in shape[2:])]


def smallest_extent(view: NetView) -> Extent:
    """The smallest candidate extent (the declared one times k/16 on every spatial axis of
    every input) at which every layer runs as it does at the declared extent; the declared
    extent with the reason when there is none."""
    try:
        found = _inputs(view)
    except InputError as exc:
        return Extent({}, {}, f"the declared input shapes cannot be read: {exc}")
    unknown = sorted(name for name, shape in found.items() if shape is None)
    declared_inputs = {name: shape for name, shape in found.items() if shape is not None}
    kept = Extent(dict(declared_inputs), dict(declared_inputs))
    if unknown:
        kept.note = f"no declared shape for input {', '.join(repr(n) for n in unknown)}"
        return kept
    if not any(
        len(shape) > 2 and any(d > 1 for d in shape[2:]) for shape in declared_inputs.values()
    ):
        return kept  # nothing to reduce: no note
    try:
        declared = _propagate(view, declared_inputs, None)
    except _Refused as exc:
        kept.note = str(exc)
        return kept
    declared |= {BlobVersion(name, INPUT): shape for name, shape in declared_inputs.items()}
    reason = ""
    for k in range(1, STEPS):
        candidate = {name: _scaled(shape, k) for name, shape in declared_inputs.items()}
        if candidate == declared_inputs:
            break
        try:
            _propagate(view, candidate, declared)
        except _Refused as exc:
            sizes = " and ".join("x".join(map(str, shape[2:])) for shape in candidate.values())
            reason = f"no smaller extent runs the same way (at {sizes}: {exc})"
            continue
        return Extent(candidate, dict(declared_inputs))
    kept.note = reason or "the declared extent is already the smallest"
    return kept


def extent_of(text: str, phase: str, path: str = "<net>") -> Extent:
    """:func:`smallest_extent` of a net given as text, built for ``phase`` (TEST or TRAIN);
    the declared extent with the reason when protoedit cannot read the net."""
    from protoedit.document import loads
    from protoedit.errors import ProtoeditError
    from protoedit.net.state import NetState

    try:
        doc = loads(text, lenient=True, path=path)
        view = NetView(doc, NetState(phase))
    except ProtoeditError as exc:
        return Extent({}, {}, f"protoedit cannot read the net: {exc}")
    return smallest_extent(view)
