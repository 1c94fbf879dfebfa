"""``to_deploy``: a train/val net as the deploy net that serves it.

Upgrade if needed, keep the layers of one phase (TEST by default), replace the data layers
by one ``Input`` layer (named like the first data layer, with the data top only), and drop
the label path: every loss and accuracy layer and every layer that depends on a label.
The input shape is given, or derived from the data layer: batch from ``batch_size``, height
and width from ``crop_size`` (or ``new_height``/``new_width``), channels from the number of
``mean_value`` entries or ``is_color``; what cannot be derived is refused with the option
that supplies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from protoedit.document import Document
from protoedit.errors import InputError
from protoedit.net.view import NetView
from protoedit.rewrites.aux import DATA_LAYERS
from protoedit.rewrites.basic import filter_net
from protoedit.rewrites.report import RewriteReport
from protoedit.rewrites.upgrade import needs_upgrade, upgrade
from protoedit.schema.values import quote
from protoedit.syntax.edit import insert_fields, parse_fields, remove_field

_PARAMS = {"Data": "data_param", "ImageData": "image_data_param", "HDF5Data": "hdf5_data_param",
           "MemoryData": "memory_data_param", "WindowData": "window_data_param"}  # fmt: skip


def _is_loss_or_accuracy(kind: str) -> bool:
    return kind.endswith("Loss") or kind == "Accuracy"


def derive_shape(layer: Any) -> tuple[list[int | None], list[str]]:
    """(N, C, H, W) a data layer implies (None where unknown), and where each came from."""
    param: Any = getattr(layer, _PARAMS[layer.type]) if layer.type in _PARAMS else None
    transform = layer.transform_param
    batch = int(param.batch_size) if param is not None and param.HasField("batch_size") else None
    if layer.type == "MemoryData":
        return [batch, int(param.channels), int(param.height), int(param.width)], ["memory_data"]
    channels: int | None = None
    if len(transform.mean_value) in (1, 3, 4):
        channels = len(transform.mean_value)
    elif layer.type == "ImageData":
        channels = 3 if param.is_color else 1
    height = width = int(transform.crop_size) if transform.crop_size else None
    if height is None and layer.type == "ImageData" and param.new_height and param.new_width:
        height, width = int(param.new_height), int(param.new_width)
    return [batch, channels, height, width], []


def to_deploy(
    doc: Document,
    phase: str = "TEST",
    shape: Sequence[int] | None = None,
    channels: int | None = None,
) -> RewriteReport:
    """Rewrite ``doc`` in place as a deploy net (see the module docstring)."""
    report = RewriteReport()
    if needs_upgrade(doc):
        report.extend(upgrade(doc))
    report.extend(filter_net(doc, phase))
    view = NetView(doc)
    data = [info for info in view.layers if info.type in DATA_LAYERS]
    if not data:
        raise InputError("the net has no data layer to replace (is it already a deploy net?)")
    first = data[0]
    if shape is not None:
        dims = list(shape)
    else:
        derived, _ = derive_shape(first.param)
        if channels is not None:
            derived[1] = channels
        missing = [name for name, v in zip("NCHW", derived, strict=True) if v is None]
        if missing:
            raise InputError(
                f"cannot tell the input's {'/'.join(missing)} from data layer '{first.name}' "
                "(batch_size, mean_value count or is_color, crop_size or new_height/new_width): "
                "give --shape N,C,H,W" + (" or --channels C" if missing == ["C"] else ""),
                doc.location(first.node.pos),
            )
        dims = [int(v) for v in derived if v is not None]
    data_top = first.writes[0]
    labels = {w for info in data for w in info.writes[1:]}
    doomed = {info.index for info in data}
    doomed |= {i.index for i in view.layers if _is_loss_or_accuracy(i.type)}
    for label in labels:
        doomed |= view.descendants(label)
    fields = doc.tree.fields
    kept_before = [f for f in fields[: fields.index(first.node)]]
    for info in reversed(view.layers):
        if info.index in doomed:
            why = (
                "data layer"
                if info.type in DATA_LAYERS
                else ("loss or accuracy" if _is_loss_or_accuracy(info.type) else "reads a label")
            )
            remove_field(doc.tree, info.node)
            report.dropped.append(f"layer '{info.name}' ({info.type}): {why}")
    report.dropped.reverse()
    where = sum(1 for f in kept_before if any(f is g for g in fields))
    shape_text = " ".join(f"dim: {d}" for d in dims)
    text = (f"layer {{\nname: {quote(first.name)}\ntype: \"Input\"\ntop: {quote(data_top.blob)}\n"
            f"input_param {{ shape {{ {shape_text} }} }}\n}}")  # fmt: skip
    insert_fields(doc.tree, doc.tree, parse_fields(text), where)
    report.changed.append(
        f"data layers -> Input layer '{first.name}' ({data_top.blob}: {' x '.join(map(str, dims))})"
    )
    doc.changed()
    outputs = [v.blob for v in NetView(doc).outputs()]
    if len(outputs) > 1:
        report.flagged.append(
            f"the net now has {len(outputs)} outputs ({', '.join(outputs)}): branches that fed "
            "dropped losses; `truncate` keeps the one you want"
        )
    return report
