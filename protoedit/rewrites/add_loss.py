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

import math
from dataclasses import dataclass
from typing import Any, Literal

from google.protobuf import text_format

from protoedit import arguments
from protoedit.document import Document
from protoedit.errors import InputError, InvalidArgumentError, MissingArgumentError
from protoedit.net.layers import NUM_OUTPUT_RULES, SAME_CHANNELS, layer_type
from protoedit.net.shapes import Shape, infer_shapes
from protoedit.net.view import INPUT, BlobVersion, LayerInfo, NetView
from protoedit.rewrites.check import check_result, lint_errors
from protoedit.rewrites.report import RewriteReport
from protoedit.rewrites.truncate import target_value
from protoedit.schema.binding import suggest
from protoedit.schema.values import format_float, quote
from protoedit.syntax.tree import Scalar

HEAD_PREFIX = "protoedit_aux_"
LOSS_TOP = f"{HEAD_PREFIX}loss"

Reduce = Literal["mean", "sum"]
#: Head kinds; ``class`` is the command line's spelling of ``logit``.
KINDS = ("channel", "unit", "logit", "sumsq")
_ALIASES = {"class": "logit"}


@dataclass(frozen=True)
class LossHead:
    """What the head measures, on axis 1 (``channel``) of the target value.

    - ``channel``: that channel's mean (or sum, per ``reduce``) over batch and positions;
    - ``unit``: that channel at one spatial ``position`` (default the centre), over the batch;
    - ``logit`` (alias ``class``): entry ``channel`` of a 2-D N x K logit blob (the class);
    - ``sumsq``: the squared norm of the whole blob (``channel`` unused); ``reduce`` defaults
      to ``sum`` for it, and ``mean`` averages the squares.

    Invalid kinds, reductions and indices raise :class:`~protoedit.errors.InputError`.
    """

    kind: str = "channel"
    channel: int = 0
    reduce: Reduce | None = None
    weight: float = 1.0
    position: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        kind = _ALIASES.get(self.kind, self.kind)
        if kind not in KINDS:
            raise InputError(
                f"unknown head kind {self.kind!r} (one of {', '.join(KINDS)}, or class)"
                + suggest(str(self.kind), [*KINDS, *_ALIASES])
            )
        object.__setattr__(self, "kind", kind)
        if self.reduce is None:
            object.__setattr__(self, "reduce", "sum" if kind == "sumsq" else "mean")
        elif self.reduce not in ("mean", "sum"):
            raise InputError(f"unknown reduction {self.reduce!r} (mean or sum)")
        if isinstance(self.channel, bool) or not isinstance(self.channel, int) or self.channel < 0:
            raise InvalidArgumentError(
                f"the channel must be an index (0 or more), not {self.channel!r}", "head"
            )
        arguments.number(self.weight, "weight", nonzero=True)
        if self.position is not None and kind != "unit":
            raise InputError(f"a position applies to a unit head, not to a {kind} head")
        if self.position is not None and any(i < 0 for i in self.position):
            raise InputError(f"a unit's position is indices (0 or more), not {self.position}")


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
    entry = layer_type(info.type)
    if entry is None:
        return None
    param: Any = getattr(info.param, entry.param_field, None) if entry.param_field else None
    if entry.shape in NUM_OUTPUT_RULES and param is not None:
        return int(param.num_output)
    concat = entry.shape == "concat" and param is not None
    if concat and (not param.HasField("axis") or param.axis in (1, -3)):
        sizes = [infer_channels(view, read, shapes) for read in info.reads]
        return None if None in sizes else sum(s for s in sizes if s is not None)
    if entry.has(SAME_CHANNELS) and info.reads:
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
    entries = []
    for info in view.layers:
        entries += [("bottom", info, n) for n, r in enumerate(info.reads) if r in chain_versions]
        entries += [("top", info, n) for n, w in enumerate(info.writes) if w in chain_versions]
    rename_blobs(doc, entries, new)
    return new


def rename_blobs(doc: Document, entries: list[tuple[str, LayerInfo, int]], new: str) -> None:
    """Set each ``(bottom|top, layer, nth)`` entry to the blob ``new``, by node: the entry's
    own field or an item of a ``[list]``.  The nodes are all found before the first edit."""
    items = []
    for name, info, nth in entries:
        assert info.block is not None  # a layer that bound is a block
        items.append(doc.elements(info.block, name)[nth][1])
    for item in items:
        assert isinstance(item, Scalar)
        doc.replace_item(item, quote(new))


def layer_text(name: str, kind: str, bottoms: list[str], tops: list[str], extra: str = "") -> str:
    """A ``layer { ... }`` block as text, for a rewrite to insert (``extra``: more lines)."""
    lines = [f"  name: {quote(name)}", f"  type: {quote(kind)}"]
    lines += [f"  bottom: {quote(b)}" for b in bottoms]
    lines += [f"  top: {quote(t)}" for t in tops]
    if extra:
        lines.append(extra)
    return "layer {\n" + "\n".join(lines) + "\n}"


def _rules_text(param: object) -> str:
    """A layer's include/exclude rules as prototxt lines (empty when it has none)."""
    lines = []
    for kind in ("include", "exclude"):
        for rule in getattr(param, kind):
            body = text_format.MessageToString(rule, as_one_line=True)
            lines.append(f"  {kind} {{ {body} }}")
    return "\n".join(lines)


def _silence_groups(view: NetView, blobs: list[str]) -> dict[str, list[str]]:
    """Blobs to silence, grouped by the rules of the layer that first writes each one.

    A blob that only some phases or stages produce must be silenced by a layer with the same
    rules, or the Silence layer would read a blob that the other states never make.
    """
    first_writer: dict[str, str] = {}
    for info in view.layers:
        for top in info.param.top:
            first_writer.setdefault(top, _rules_text(info.param))
    groups: dict[str, list[str]] = {}
    for name in blobs:
        groups.setdefault(first_writer.get(name, ""), []).append(name)
    return groups


class _HeadLayers:
    """The head being built: its layers as text, the slice pieces nothing reads (to be
    silenced), the blob the final ``Reduction`` reads, that reduction's coefficient and
    the words for what it measures."""

    def __init__(self, blob: str) -> None:
        self.blob = blob
        self.texts: list[str] = []
        self.unused: list[str] = []
        self.measured = blob
        self.coeff = 1.0
        self.description = f"squared norm of '{blob}'"

    def take(self, source: str, *, axis: int, index: int, size: int, noun: str = "channel") -> str:
        """Slice entry ``index`` of ``axis`` out of ``source``; return the picked blob.

        A size-1 axis needs no slice (``source`` itself); the pieces before and after the
        entry (none at an edge) are unused.
        """
        if not 0 <= index < size:
            what = f"{noun} {index}" if axis == 1 else f"index {index} on axis {axis}"
            raise InvalidArgumentError(
                f"{what} is out of range: '{self.blob}' has {size} there", "head"
            )
        if size == 1:
            return source
        suffix = "" if axis == 1 else f"_axis{axis}"
        picked = f"{HEAD_PREFIX}picked{suffix}"
        pieces, points = [], []
        if index > 0:
            pieces.append(f"{HEAD_PREFIX}before{suffix}")
            points.append(index)
        pieces.append(picked)
        if index < size - 1:
            pieces.append(f"{HEAD_PREFIX}after{suffix}")
            points.append(index + 1)
        self.unused.extend(p for p in pieces if p != picked)
        slice_param = (
            f"  slice_param {{\n    axis: {axis}\n"
            + "".join(f"    slice_point: {p}\n" for p in points)
            + "  }"
        )
        self.texts.append(
            layer_text(f"{HEAD_PREFIX}slice{suffix}", "Slice", [source], pieces, slice_param)
        )
        return picked


def _check_logit(view: NetView, version: BlobVersion, shape: Shape | None) -> str | None:
    """Refuse a class head on what is not an N x K logit blob; a note when unverifiable."""
    writer = view.by_index.get(version.producer)
    if writer is not None and writer.type == "Softmax":
        before = writer.reads[0].blob if writer.reads else "its input"
        raise InputError(
            f"'{version.blob}' is a probability (written by Softmax layer '{writer.name}'): "
            f"a class head needs the logits before it ('{before}')"
        )
    if shape is None:
        return f"could not tell that '{version.blob}' is a 2-D N x K logit blob; assumed it is"
    if len(shape) != 2:
        raise InputError(
            f"'{version.blob}' has shape {'x'.join(map(str, shape))}: a class head needs a "
            "2-D N x K logit blob (e.g. an InnerProduct's output); measure a channel or a "
            "unit of this one"
        )
    return None


def _indices(count: int) -> str:
    return f"{count} ind{'ex' if count == 1 else 'ices'}"


def _measure_channel(
    head_layers: _HeadLayers,
    view: NetView,
    version: BlobVersion,
    head: LossHead,
    target_channels: int | None,
    report: RewriteReport,
) -> None:
    """A channel's (or a logit's) slice of axis 1."""
    blob = version.blob
    shapes = None
    if head.kind == "logit":
        shapes = infer_shapes(view)
        note = _check_logit(view, version, shapes.get(version))
        if note:
            report.flagged.append(note)
    count = target_channels
    if count is None:
        count = infer_channels(view, version, shapes)
    if count is None:
        raise MissingArgumentError(
            f"cannot tell how many channels '{blob}' has from the layer parameters: "
            "give the channel count",
            {"target_channels": None},
        )
    head_layers.description = f"{head.reduce} of channel {head.channel} of '{blob}'"
    if head.kind == "logit":
        head_layers.description = f"logit {head.channel} of '{blob}' ({head.reduce} over the batch)"
    noun = "class" if head.kind == "logit" else "channel"
    head_layers.measured = head_layers.take(blob, axis=1, index=head.channel, size=count, noun=noun)


def _measure_unit(
    head_layers: _HeadLayers, view: NetView, version: BlobVersion, head: LossHead
) -> None:
    """One position of one channel: a slice per axis after the batch."""
    blob = version.blob
    shape = infer_shapes(view).get(version)
    if shape is None or len(shape) < 2:
        raise InputError(f"cannot tell the shape of '{blob}' from the layer parameters")
    spatial = list(head.position) if head.position else [size // 2 for size in shape[2:]]
    if len(spatial) != len(shape) - 2:
        raise InputError(
            f"'{blob}' has shape {'x'.join(map(str, shape))}: give the unit as "
            f"K{',I' * (len(shape) - 2)} ({_indices(len(shape) - 1)})"
        )
    at = f" at ({', '.join(map(str, spatial))})" if spatial else ""
    head_layers.description = f"{head.reduce} over the batch of unit {head.channel}{at} of '{blob}'"
    where = [head.channel, *spatial]
    for axis, (index, size) in enumerate(zip(where, shape[1:], strict=True), start=1):
        head_layers.measured = head_layers.take(
            head_layers.measured, axis=axis, index=index, size=size
        )


def _measure_sumsq(
    head_layers: _HeadLayers, view: NetView, version: BlobVersion, head: LossHead
) -> None:
    """The whole blob; its mean square scales the sum by one over the element count."""
    if head.reduce != "mean":
        return
    blob = version.blob
    shape = infer_shapes(view).get(version)
    if shape is None:
        raise MissingArgumentError(
            f"cannot tell the size of '{blob}' from the layer parameters, so not the "
            "mean of its squares; the sum needs no size",
            {"reduce": "sum"},
        )
    count = math.prod(shape)
    if count == 0:
        raise InputError(f"'{blob}' has no elements (shape {' x '.join(map(str, shape))})")
    head_layers.coeff = 1.0 / count
    head_layers.description = f"mean square of '{blob}' (squared norm / {count})"


def add_loss(
    doc: Document,
    target: str,
    head: LossHead,
    *,
    after_inplace: bool = False,
    target_channels: int | None = None,
) -> RewriteReport:
    """Append a loss head that measures ``head`` on the ``target`` value; ``target_channels``
    is the target's channel count, for when the layers do not tell."""
    view = NetView.editable(doc)
    version = target_value(view, target, after_inplace)
    report = RewriteReport(changed=list(view.normalised))
    baseline = lint_errors(doc)
    names = {info.name for info in view.layers}
    if any(name.startswith(HEAD_PREFIX) for name in names):
        raise InputError("the net already has a protoedit loss head; add_loss once per net")
    head_layers = _HeadLayers(version.blob)
    if head.kind in ("channel", "logit"):
        _measure_channel(head_layers, view, version, head, target_channels, report)
    elif head.kind == "unit":
        _measure_unit(head_layers, view, version, head)
    else:
        _measure_sumsq(head_layers, view, version, head)
    blob = version.blob
    operation = "SUMSQ" if head.kind == "sumsq" else str(head.reduce).upper()
    coeff = head_layers.coeff
    scale = f"    coeff: {format_float(coeff)}\n" if coeff != 1.0 else ""
    reduction = (
        f"  loss_weight: {format_float(head.weight)}\n"
        f"  reduction_param {{\n    operation: {operation}\n    axis: 0\n{scale}  }}"
    )
    texts = head_layers.texts
    texts.append(
        layer_text(f"{HEAD_PREFIX}loss", "Reduction", [head_layers.measured], [LOSS_TOP], reduction)
    )
    moved = _move_inplace_chain(doc, view, version) if not after_inplace else None
    if moved:
        report.changed.append(
            f"in-place layers after '{version.blob}' now write '{moved}', so the head reads "
            f"'{version.blob}' before them"
        )
    # Every other dangling top must not be an output: silence it (the view is re-read
    # because the in-place chain may have moved to a new name).
    after = NetView(doc) if moved else view
    dangling = [v.blob for v in after.outputs() if v.blob != blob]
    silenced = sorted(set(head_layers.unused + dangling))
    groups = _silence_groups(after, silenced)
    for number, (rules, blobs) in enumerate(sorted(groups.items())):
        name = f"{HEAD_PREFIX}silence" + (f"_{number}" if number else "")
        texts.append(layer_text(name, "Silence", blobs, [], rules))
    for text in texts:
        doc.insert("", text)
    report.changed.append(
        f"loss '{LOSS_TOP}' = {format_float(head.weight)} x {head_layers.description}"
        + (f"; silenced {', '.join(silenced)}" if silenced else "")
    )
    check_result(doc, "add_loss", baseline=baseline)
    return report
