"""``to_deploy``: a train/val net as the deploy net that serves it.

Upgrade if needed, keep the layers of one state (phase TEST by default), replace the data
layers by one ``Input`` layer (named like the first data layer, with the data top only),
drop the label path (every loss and accuracy layer and every layer that depends on a
label) and put a ``Softmax`` ``prob`` where the last ``SoftmaxWithLoss`` was, as BVLC's
deploy files end.  The input shape is given, or derived from the data layer: batch from
``batch_size`` (or ``batch``), height and width from ``crop_size`` (or
``new_height``/``new_width``), channels from the number of ``mean_value`` entries or
``is_color``; what cannot be derived is refused, naming the parameter that supplies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from protoedit.document import Document
from protoedit.errors import InputError, MissingArgumentError
from protoedit.net.layers import (
    PYTHON,
    Catalogue,
    data_param,
    for_schema,
    is_a,
    is_data_layer,
    is_loss_or_accuracy,
)
from protoedit.net.state import NetState, phases
from protoedit.net.view import LayerInfo, NetView
from protoedit.rewrites.basic import describe_state, filter_net, net_state, stages_that_include
from protoedit.rewrites.check import check_result
from protoedit.rewrites.cleanup import drop_layers
from protoedit.rewrites.report import RewriteReport
from protoedit.rewrites.upgrade import needs_upgrade, upgrade
from protoedit.schema.values import quote
from protoedit.syntax.edit import parse_fields
from protoedit.syntax.tree import Field

NEEDS_LABELS = "it needs labels"


def derive_shape(layer: Any, catalogue: Catalogue | None = None) -> list[int | None]:
    """(N, C, H, W) a data layer implies, ``None`` where its parameters do not tell; a fork
    schema's ``catalogue`` (:func:`~protoedit.net.layers.for_schema`) knows its types."""
    param: Any = data_param(layer, catalogue)
    has = param.DESCRIPTOR.fields_by_name if param is not None else {}
    transform = layer.transform_param
    batch = int(param.batch_size) if "batch_size" in has and param.HasField("batch_size") else None
    if "channels" in has and "height" in has:  # MemoryData: the shape is its parameters
        return [batch, int(param.channels), int(param.height), int(param.width)]
    channels: int | None = None
    if len(transform.mean_value) in (1, 3, 4):
        channels = len(transform.mean_value)
    elif "is_color" in has:  # ImageData and its kin
        channels = 3 if param.is_color else 1
    height = width = int(transform.crop_size) if transform.crop_size else None
    if height is None and "new_height" in has and param.new_height and param.new_width:
        height, width = int(param.new_height), int(param.new_width)
    return [batch, channels, height, width]


def _input_dims(
    doc: Document,
    first: LayerInfo,
    shape: Sequence[int] | None,
    input_channels: int | None,
    batch: int | None,
) -> list[int]:
    """The Input layer's shape: given, or derived from the first data layer."""
    if shape is not None:
        dims = [int(d) for d in shape]
    else:
        derived = derive_shape(first.param, for_schema(doc.schema))
        if input_channels is not None:
            derived[1] = input_channels
        if batch is not None:
            derived[0] = batch
        missing = [name for name, v in zip("NCHW", derived, strict=True) if v is None]
        if missing:
            needs: dict[str, str | None] = {"shape": None}
            if missing == ["C"]:
                needs["input_channels"] = None
            if missing == ["N"]:
                needs["batch"] = None
            source = (
                "a Python layer"
                if is_a(first.type, PYTHON)
                else "batch_size, mean_value count or is_color, crop_size or new_height/new_width"
            )
            raise MissingArgumentError(
                f"cannot tell the input's {'/'.join(missing)} from data layer '{first.name}' "
                f"({source}): give the shape"
                + (" or the input's channel count" if "input_channels" in needs else "")
                + (" or the batch size" if "batch" in needs else ""),
                needs,
                doc.location(first.pos),
            )
        dims = [int(v) for v in derived if v is not None]
    if batch is not None:
        dims[0] = batch
    return dims


def _position(before: list[Field], fields: list[Field]) -> int:
    """Where a removed node stood: the number of fields that preceded it and survive."""
    alive = {id(f) for f in fields}
    return sum(1 for f in before if id(f) in alive)


def _unique(name: str, view: NetView) -> str:
    taken = {i.name for i in view.layers} | {w.blob for i in view.layers for w in i.writes}
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    return candidate


def deploy_net(
    doc: Document,
    phase: str = "TEST",
    *,
    shape: Sequence[int] | None = None,
    input_channels: int | None = None,
    level: int = 0,
    stages: Sequence[str] = (),
    batch: int | None = None,
) -> RewriteReport:
    """:func:`to_deploy` without its final flags and check (``aux`` goes on editing)."""
    report = RewriteReport()
    if needs_upgrade(doc):
        report.extend(upgrade(doc))
    original = NetView.editable(doc)
    report.changed += original.normalised
    state = net_state(doc, phase, level, stages)
    sources = {info.index for info in original.layers if is_data_layer(info.param)}
    if sources and not sources & {info.index for info in NetView(doc, state).layers}:
        hint = stages_that_include(doc, sources, state)
        needs: dict[str, str | None] = {"stages": hint[0] if hint else None}
        why = f": they need stage {' or '.join(repr(s) for s in hint)}" if hint else ""
        other = NetState(phases()[1 - phases().index(state.phase)], state.level, state.stages)
        if not hint and sources & {info.index for info in NetView(doc, other).layers}:
            needs, why = {"phase": other.phase}, f": they run in phase {other.phase}"
        raise MissingArgumentError(
            f"no data layer of the net runs in {describe_state(state)}{why}",
            needs,
            doc.location(original.by_index[min(sources)].pos),
        )
    report.extend(filter_net(doc, phase, level, stages))
    view = NetView(doc)
    data = [info for info in view.layers if is_data_layer(info.param)]
    if not data:
        raise InputError("the net has no data layer to replace (is it already a deploy net?)")
    first = data[0]
    if not first.writes:
        raise InputError(
            f"data layer '{first.name}' has no top: there is no input to replace it with",
            doc.location(first.pos),
        )
    dims = _input_dims(doc, first, shape, input_channels, batch)
    data_top = first.writes[0]
    labels = {w for info in data for w in info.writes[1:]}
    reasons = {info.index: "data layer (the Input layer replaces it)" for info in data}
    for info in view.layers:
        if is_loss_or_accuracy(info.type) and info.index not in reasons:
            reasons[info.index] = NEEDS_LABELS
    for label in labels:
        for index in view.descendants(label):
            reasons.setdefault(index, "it reads a label")
    # The last softmax loss whose scores survive becomes the net's probability output.
    softmax = [
        i
        for i in view.layers
        if i.type == "SoftmaxWithLoss" and i.reads and i.reads[0].producer not in reasons
    ]
    logits = softmax[-1] if softmax else None
    fields = doc.tree.fields
    before_input = fields[: fields.index(first.node)]
    before_prob = fields[: fields.index(logits.node)] if logits is not None else []
    if logits is not None:
        del reasons[logits.index]
        doc.remove(doc.tree, logits.node)
    drop_layers(doc, view, reasons, report)
    if logits is not None:
        prob = _unique("prob", view)
        text = (
            f'layer {{\nname: {quote(prob)}\ntype: "Softmax"\n'
            f"bottom: {quote(logits.reads[0].blob)}\ntop: {quote(prob)}\n}}"
        )
        doc.insert_fields(doc.tree, parse_fields(text), _position(before_prob, fields))
        report.changed.append(
            f"layer '{logits.name}' (SoftmaxWithLoss) -> Softmax '{prob}' on "
            f"'{logits.reads[0].blob}' (a deploy net ends in a probability)"
        )
        report.removed[logits.name] = f"{NEEDS_LABELS}; Softmax '{prob}' took its place"
    shape_text = " ".join(f"dim: {d}" for d in dims)
    text = (
        f'layer {{\nname: {quote(first.name)}\ntype: "Input"\ntop: {quote(data_top.blob)}\n'
        f"input_param {{ shape {{ {shape_text} }} }}\n}}"
    )
    doc.insert_fields(doc.tree, parse_fields(text), _position(before_input, fields))
    report.changed.append(
        f"data layers -> Input layer '{first.name}' ({data_top.blob}: {' x '.join(map(str, dims))})"
    )
    return report


def to_deploy(
    doc: Document,
    phase: str = "TEST",
    *,
    shape: Sequence[int] | None = None,
    input_channels: int | None = None,
    level: int = 0,
    stages: Sequence[str] = (),
    batch: int | None = None,
) -> RewriteReport:
    """Rewrite ``doc`` in place as a deploy net (see the module docstring).

    ``phase``, ``level`` and ``stages`` select the state (as Caffe's ``NetState``);
    ``batch`` replaces the batch size (default: the data layer's).  A result Caffe would
    not load raises :class:`~protoedit.errors.BrokenResultError`.
    """
    report = deploy_net(
        doc,
        phase,
        shape=shape,
        input_channels=input_channels,
        level=level,
        stages=stages,
        batch=batch,
    )
    outputs = [v.blob for v in NetView(doc).outputs()]
    if len(outputs) > 1:
        report.flagged.append(
            f"the net now has {len(outputs)} outputs ({', '.join(outputs)}): branches that fed "
            "dropped losses; `truncate` keeps the one you want"
        )
    check_result(doc, "to_deploy")
    return report
