"""V0 -> V1: Caffe's oldest layout (``layers { layer { name type: "conv" ... } bottom top }``).

Follows Caffe's ``UpgradeV0Net``: padding layers are folded into the convolution or pooling
that reads them; each V0 layer's flat fields go to the V1 layer's typed parameter messages by
Caffe's table (``kernelsize`` of a ``conv`` to ``convolution_param.kernel_size``, ...); the
net keeps only its name, layers, input header and ``force_backward``.  The V0 layers are
re-rendered (comments around each layer stay; comments inside a V0 layer cannot follow its
fields into new messages and are dropped, which the report says).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import text_format

from protoedit.document import Document
from protoedit.errors import InputError
from protoedit.net.layers import CATALOGUE
from protoedit.rewrites.report import RewriteReport
from protoedit.syntax.edit import parse_fields, reindent
from protoedit.syntax.tree import Block, Field

_ANY = "*"
#: V0 field -> {V0 type (or * for any): "param_message.field" in V1}.
_MOVES: dict[str, dict[str, str]] = {
    "num_output": {
        "conv": "convolution_param.num_output",
        "innerproduct": "inner_product_param.num_output",
    },
    "biasterm": {
        "conv": "convolution_param.bias_term",
        "innerproduct": "inner_product_param.bias_term",
    },
    "weight_filler": {
        "conv": "convolution_param.weight_filler",
        "innerproduct": "inner_product_param.weight_filler",
    },
    "bias_filler": {
        "conv": "convolution_param.bias_filler",
        "innerproduct": "inner_product_param.bias_filler",
    },
    "pad": {"conv": "convolution_param.pad", "pool": "pooling_param.pad"},
    "kernelsize": {"conv": "convolution_param.kernel_size", "pool": "pooling_param.kernel_size"},
    "group": {"conv": "convolution_param.group"},
    "stride": {"conv": "convolution_param.stride", "pool": "pooling_param.stride"},
    "pool": {"pool": "pooling_param.pool"},
    "dropout_ratio": {"dropout": "dropout_param.dropout_ratio"},
    "local_size": {"lrn": "lrn_param.local_size"},
    "alpha": {"lrn": "lrn_param.alpha"},
    "beta": {"lrn": "lrn_param.beta"},
    "k": {"lrn": "lrn_param.k"},
    "source": {
        "data": "data_param.source",
        "hdf5_data": "hdf5_data_param.source",
        "images": "image_data_param.source",
        "window_data": "window_data_param.source",
        "infogain_loss": "infogain_loss_param.source",
    },
    "scale": {_ANY: "transform_param.scale"},
    "meanfile": {_ANY: "transform_param.mean_file"},
    "batchsize": {
        "data": "data_param.batch_size",
        "hdf5_data": "hdf5_data_param.batch_size",
        "images": "image_data_param.batch_size",
        "window_data": "window_data_param.batch_size",
    },
    "cropsize": {_ANY: "transform_param.crop_size"},
    "mirror": {_ANY: "transform_param.mirror"},
    "rand_skip": {"data": "data_param.rand_skip", "images": "image_data_param.rand_skip"},
    "shuffle_images": {"images": "image_data_param.shuffle"},
    "new_height": {"images": "image_data_param.new_height"},
    "new_width": {"images": "image_data_param.new_width"},
    "concat_dim": {"concat": "concat_param.concat_dim"},
    "det_fg_threshold": {"window_data": "window_data_param.fg_threshold"},
    "det_bg_threshold": {"window_data": "window_data_param.bg_threshold"},
    "det_fg_fraction": {"window_data": "window_data_param.fg_fraction"},
    "det_context_pad": {"window_data": "window_data_param.context_pad"},
    "det_crop_mode": {"window_data": "window_data_param.crop_mode"},
    "hdf5_output_param": {"hdf5_output": "hdf5_output_param"},
}
_NET_FIELDS_KEPT = ("name", "layers", "input", "input_dim", "force_backward")


def _assign(target: Any, path: str, value: Any) -> None:
    """Set ``target.a.b`` to ``value`` (append for repeated fields, copy for messages)."""
    *parents, leaf = path.split(".")
    for name in parents:
        target = getattr(target, name)
    current = getattr(target, leaf)
    if hasattr(current, "CopyFrom"):
        current.CopyFrom(value)
    elif hasattr(current, "append"):
        current.append(value)
    else:
        setattr(target, leaf, value)


def _v1_name(kind: str) -> str:
    """The V1 enum name of V0 type string ``kind`` (``NONE`` for one V0 did not have)."""
    entry = CATALOGUE.by_v0.get(kind)
    return entry.v1 if entry is not None and entry.v1 else "NONE"


def _v1_layer(connection: Any, v1_class: Any) -> Any:
    """One V0 layer connection as a V1LayerParameter message (Caffe's table)."""
    layer = v1_class()
    layer.bottom.extend(connection.bottom)
    layer.top.extend(connection.top)
    v0 = connection.layer
    kind = v0.type
    if v0.HasField("name"):
        layer.name = v0.name
    if v0.HasField("type"):
        enum = layer.DESCRIPTOR.fields_by_name["type"].enum_type
        layer.type = enum.values_by_name[_v1_name(kind)].number
    for blob in v0.blobs:
        layer.blobs.add().CopyFrom(blob)
    layer.blobs_lr.extend(v0.blobs_lr)
    layer.weight_decay.extend(v0.weight_decay)
    for name, targets in _MOVES.items():
        if not v0.HasField(name):
            continue
        path = targets.get(kind) or targets.get(_ANY)
        if path is None:
            continue  # Caffe reports it and drops it
        value = getattr(v0, name)
        if name == "pool":
            value = v0.DESCRIPTOR.fields_by_name["pool"].enum_type.values_by_number[value].name
            enum = layer.pooling_param.DESCRIPTOR.fields_by_name["pool"].enum_type
            value = enum.values_by_name[value].number
        _assign(layer, path, value)
    return layer


def upgrade_v0(doc: Document, report: RewriteReport) -> None:
    """Rewrite the V0 ``layers`` of ``doc`` as V1 ones in the tree (then V1 -> current)."""
    net = doc.message
    fields = [f for f, _ in doc.elements(doc.tree, "layers")]  # split: one field per layer
    v1_class = doc.schema.message_class("V1LayerParameter")
    producer: dict[str, int] = {name: -1 for name in net.input}
    connections = list(net.layers)
    padding_source: dict[int, Any] = {}
    for index, connection in enumerate(connections):
        for nth, bottom in enumerate(connection.bottom):
            source = producer.get(bottom, -1)
            if source >= 0 and connections[source].layer.type == "padding":
                if connection.layer.type not in ("conv", "pool") or len(connection.bottom) != 1:
                    raise InputError(
                        f"layer '{connection.layer.name}' reads a padding layer but is not a "
                        "single-input conv or pool layer (Caffe refuses this)",
                        doc.location(fields[index].pos),
                    )
                padding_source[index] = (nth, connections[source])
        for top in connection.top:
            producer[top] = index
    for index, (connection, field) in enumerate(zip(connections, fields, strict=True)):
        if connection.layer.type == "padding":
            doc.remove(doc.tree, field)
            report.changed.append(f"padding layer '{connection.layer.name}' folded into its reader")
            continue
        layer = _v1_layer(connection, v1_class)
        if index in padding_source:
            nth, pad_layer = padding_source[index]
            v0_pad = pad_layer.layer.pad
            if connection.layer.type == "conv":
                del layer.convolution_param.pad[:]
                layer.convolution_param.pad.append(v0_pad)
            else:
                layer.pooling_param.pad = v0_pad
            layer.bottom[nth] = pad_layer.bottom[0]
        # name and type first, as people write layers; the rest in field-number order.
        head = v1_class()
        for key in ("name", "type"):
            if layer.HasField(key):
                setattr(head, key, getattr(layer, key))
                layer.ClearField(key)
        body = text_format.MessageToString(head) + text_format.MessageToString(layer)
        text = "layers {\n" + body + "}\n"
        [new] = parse_fields(text)
        reindent([new], "", "  ", "\n")
        assert isinstance(new.value, Block) and isinstance(field.value, Block)
        doc.replace_value(field, new.value)
        report.changed.append(f"layer '{connection.layer.name}': V0 layer re-written as V1")
    # UpgradeV0Net keeps only these net-level fields.
    for field in list(doc.tree.fields):
        if field.name.text not in _NET_FIELDS_KEPT:
            doc.remove(doc.tree, field)
            report.dropped.append(f"net field '{field.name.text}' (Caffe's V0 upgrade drops it)")


def is_v0(fields: list[Field]) -> bool:
    """True when a ``layers`` entry holds a V0 ``layer { ... }``."""
    return any(
        isinstance(f.value, Block) and any(c.name.text == "layer" for c in f.value.fields)
        for f in fields
        if f.name.text == "layers"
    )
