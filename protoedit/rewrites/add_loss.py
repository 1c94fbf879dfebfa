"""``add_loss``: an activation-loss head from stock Caffe layers only.

The head's loss is exactly the chosen activation: one channel's mean or sum, one unit (a
channel at one position, the centre by default, averaged over the batch), the whole blob's
squared norm, or a class logit (a channel of a 2-D blob), times a weight (negative to
minimise).  Its top is a scalar (``Reduction`` over every axis) so the loss weight lives in a
blob that never grows.  Pieces the head does not use, and every other dangling top, go to a
``Silence`` layer, so the head is the net's only output.  Head layer names start with
:data:`HEAD_PREFIX`, which no trained model uses, so weights copied by name never land there.
When the wanted value is later rewritten in place (e.g. by a ReLU), the in-place layers are
moved to a new blob name so the head reads the value before them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from protoedit.document import Document
from protoedit.errors import InputError
from protoedit.net.shapes import SAME_SHAPE, Shape, infer_shapes
from protoedit.net.view import INPUT, BlobVersion, NetView
from protoedit.rewrites.report import RewriteReport
from protoedit.rewrites.truncate import target_value
from protoedit.schema.values import format_float, quote

HEAD_PREFIX = "protoedit_aux_"
LOSS_TOP = f"{HEAD_PREFIX}loss"

#: Layers whose output has as many channels as their first input (whatever its size).
_SAME_CHANNELS = SAME_SHAPE | {"Pooling", "Crop"}

Reduce = Literal["mean", "sum"]


@dataclass(frozen=True)
class LossHead:
    """What the head measures: a ``channel`` (mean or sum, per ``reduce``), one ``unit``
    (channel ``index`` at ``position``, default the centre), a ``logit`` or ``sumsq``."""

    kind: Literal["channel", "unit", "sumsq", "logit"] = "channel"
    index: int = 0  # the channel, or the class
    reduce: Reduce = "mean"
    weight: float = 1.0
    position: tuple[int, ...] | None = None  # spatial indices of a unit


def infer_channels(
    view: NetView, version: BlobVersion, shapes: dict[BlobVersion, Shape | None] | None = None
) -> int | None:
    """The size of axis 1 of a value, from the layer parameters (None when unknown).

    The inferred shape when there is one; else what the layers tell about channels alone
    (``num_output``, Concat sums, channel-keeping layers), which needs no spatial sizes.
    """
    shapes = infer_shapes(view) if shapes is None else shapes
    shape = shapes.get(version)
    if shape is not None and len(shape) > 1:
        return shape[1]
    if version.producer == INPUT:
        return None
    info = view.by_index[version.producer]
    param = info.param
    if info.type in ("Convolution", "Deconvolution"):
        return int(param.convolution_param.num_output)
    if info.type == "InnerProduct":
        return int(param.inner_product_param.num_output)
    concat = param.concat_param
    if info.type == "Concat" and (not concat.HasField("axis") or concat.axis in (1, -3)):
        sizes = [infer_channels(view, read, shapes) for read in info.reads]
        return None if None in sizes else sum(s for s in sizes if s is not None)
    if info.type in _SAME_CHANNELS and info.reads:
        return infer_channels(view, info.reads[0], shapes)
    return None


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    taken.add(candidate)
    return candidate


def _move_inplace_chain(doc: Document, view: NetView, version: BlobVersion) -> str | None:
    """Give the in-place layers after ``version`` a new blob; return its name (None if none).

    The first of them reads ``version`` and writes the new name; the rest of the chain and
    every later reader of the chain's result use the new name.  ``version`` then keeps its
    name and its value (the pre-activation) to the end of the net.
    """
    chain = view.inplace_chain(version)
    if not chain:
        return None
    blobs = {w.blob for info in view.layers for w in info.writes}
    new = _unique(f"{version.blob}_after_{chain[0].name}".replace("/", "_"), blobs)
    # Values the chain writes: every reader of them (the chain itself included) moves over.
    chain_versions = {w for info in chain for w in info.writes if w.blob == version.blob}
    for info in view.layers:
        for nth, read in enumerate(info.reads):
            if read in chain_versions:
                doc.set(f"layer[{info.index}].bottom[{nth}]", new)
        for nth, write in enumerate(info.writes):
            if write in chain_versions:
                doc.set(f"layer[{info.index}].top[{nth}]", new)
    return new


def _layer(name: str, kind: str, bottoms: list[str], tops: list[str], extra: str = "") -> str:
    lines = [f"  name: {quote(name)}", f"  type: {quote(kind)}"]
    lines += [f"  bottom: {quote(b)}" for b in bottoms]
    lines += [f"  top: {quote(t)}" for t in tops]
    if extra:
        lines.append(extra)
    return "layer {\n" + "\n".join(lines) + "\n}"


def _pick(
    texts: list[str], unused: list[str], blob: str, axis: int, index: int, size: int, suffix: str
) -> str:
    """Add a Slice that takes entry ``index`` of ``axis``; return the picked blob's name.

    Pieces before and after it (none when the index is at an edge) go to ``unused``; a size-1
    axis needs no slice at all.
    """
    if not 0 <= index < size:
        raise InputError(f"index {index} is out of range on axis {axis} (size {size})")
    if size == 1:
        return blob
    picked = f"{HEAD_PREFIX}picked{suffix}"
    pieces, points = [], []
    if index > 0:
        pieces.append(f"{HEAD_PREFIX}before{suffix}")
        points.append(index)
    pieces.append(picked)
    if index < size - 1:
        pieces.append(f"{HEAD_PREFIX}after{suffix}")
        points.append(index + 1)
    unused.extend(p for p in pieces if p != picked)
    slice_param = (
        f"  slice_param {{\n    axis: {axis}\n"
        + "".join(f"    slice_point: {p}\n" for p in points)
        + "  }"
    )
    texts.append(_layer(f"{HEAD_PREFIX}slice{suffix}", "Slice", [blob], pieces, slice_param))
    return picked


def add_loss(
    doc: Document,
    target: str,
    head: LossHead,
    after_inplace: bool = False,
    channels: int | None = None,
) -> RewriteReport:
    """Append a loss head that measures ``head`` on the ``target`` value."""
    view = NetView(doc)
    version = target_value(view, target, after_inplace)
    report = RewriteReport(changed=list(view.normalised))
    names = {info.name for info in view.layers}
    if any(name.startswith(HEAD_PREFIX) for name in names):
        raise InputError("the net already has a protoedit loss head; add_loss once per net")
    moved = _move_inplace_chain(doc, view, version) if not after_inplace else None
    if moved:
        report.changed.append(
            f"in-place layers after '{version.blob}' now write '{moved}', so the head reads "
            f"'{version.blob}' before them"
        )
    blob = version.blob
    texts: list[str] = []
    unused: list[str] = []
    reduced = blob
    what = f"squared norm of '{blob}'"
    if head.kind in ("channel", "logit"):
        count = channels if channels is not None else infer_channels(view, version)
        if count is None:
            raise InputError(
                f"cannot tell how many channels '{blob}' has from the layer parameters; "
                "give them (--channels N)"
            )
        what = f"{head.reduce} of channel {head.index} of '{blob}'"
        if head.kind == "logit":
            what = f"logit {head.index} of '{blob}' ({head.reduce} over the batch)"
        reduced = _pick(texts, unused, blob, 1, head.index, count, "")
    elif head.kind == "unit":
        shape = infer_shapes(view).get(version)
        if shape is None or len(shape) < 2:
            raise InputError(f"cannot tell the shape of '{blob}' from the layer parameters")
        spatial = list(head.position) if head.position else [size // 2 for size in shape[2:]]
        if len(spatial) != len(shape) - 2:
            raise InputError(
                f"'{blob}' has shape {'x'.join(map(str, shape))}: give the unit as "
                f"K{',I' * (len(shape) - 2)} ({len(shape) - 1} indices)"
            )
        where = [head.index, *spatial]
        what = f"{head.reduce} over the batch of unit {tuple(where)} of '{blob}'"
        for axis, (index, size) in enumerate(zip(where, shape[1:], strict=True), start=1):
            suffix = "" if axis == 1 else f"_axis{axis}"
            reduced = _pick(texts, unused, reduced, axis, index, size, suffix)
    operation = {"channel": head.reduce.upper(), "logit": head.reduce.upper(),
                 "unit": head.reduce.upper(), "sumsq": "SUMSQ"}  # fmt: skip
    reduction = (
        f"  loss_weight: {format_float(head.weight)}\n"
        f"  reduction_param {{\n    operation: {operation[head.kind]}\n    axis: 0\n  }}"
    )
    texts.append(_layer(f"{HEAD_PREFIX}loss", "Reduction", [reduced], [LOSS_TOP], reduction))
    # Every other dangling top must not be an output: silence it (the view is re-read
    # because the in-place chain may have moved to a new name).
    after = NetView(doc) if moved else view
    dangling = [v.blob for v in after.outputs() if v.blob != blob]
    silenced = sorted(set(unused + dangling))
    if silenced:
        texts.append(_layer(f"{HEAD_PREFIX}silence", "Silence", silenced, []))
    for text in texts:
        doc.insert("", text)
    report.changed.append(
        f"loss '{LOSS_TOP}' = {format_float(head.weight)} x {what}"
        + (f"; silenced {', '.join(silenced)}" if silenced else "")
    )
    return report
