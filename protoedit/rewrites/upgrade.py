"""``upgrade``: legacy net files to the current format, as Caffe's own upgrader does it.

The steps and their order follow Caffe's ``UpgradeNetAsNeeded``: old data-transformation
fields move into ``transform_param``; V1 ``layers { type: ENUM }`` become ``layer { type:
"Name" }`` with ``blobs_lr``/``weight_decay``/``param``/``blob_share_mode`` folded into
``param { ... }`` blocks; an ``input:``/``input_dim:``/``input_shape:`` header becomes an
``Input`` layer named ``input`` in front of the others; BatchNorm layers lose the three
``param`` specs the old definition required.  The edits are made on the lossless tree, so
comments and untouched text stay; V0 files (``layers { layer { ... } }``) go through
:mod:`protoedit.rewrites.upgrade_v0` first.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from protoedit.document import Document
from protoedit.errors import InputError
from protoedit.lint import inline_nets
from protoedit.net.inputs import LEGACY_HEADER, legacy_input_shapes
from protoedit.net.layers import CATALOGUE, DATA
from protoedit.net.view import split_layer_lists
from protoedit.rewrites.report import RewriteReport
from protoedit.rewrites.upgrade_v0 import is_v0, upgrade_v0
from protoedit.schema import Schema
from protoedit.schema.binding import is_repeated
from protoedit.schema.values import quote
from protoedit.syntax import parse
from protoedit.syntax.edit import Style, indent_of, parse_fields
from protoedit.syntax.split import elements, indent_block
from protoedit.syntax.tree import Block, Field, Scalar

#: V1 layer type enum -> the type string the current format uses: Caffe's upgrade table,
#: from the layer catalogue (``NONE`` becomes the empty type, as in Caffe).
V1_TYPES = {"NONE": "", **{t.v1: t.name for t in CATALOGUE if t.v1}}


@lru_cache(maxsize=16)
def copied_fields(schema: Schema) -> frozenset[str]:
    """The V1 layer fields Caffe's upgrade carries over unchanged: those ``LayerParameter``
    declares with the same name and type (``type`` and ``param`` change type, the rest of
    ``V1LayerParameter`` is folded into ``param`` blocks or dropped)."""
    new = schema.descriptor("LayerParameter").fields_by_name
    return frozenset(
        field.name
        for field in schema.descriptor("V1LayerParameter").fields
        if field.name in new and _same_type(field, new[field.name])
    )


def _same_type(old: Any, new: Any) -> bool:
    """Two field descriptors of the same kind, repetition and (message or enum) type."""
    if old.type != new.type or is_repeated(old) != is_repeated(new):
        return False
    kinds = ((old.message_type, new.message_type), (old.enum_type, new.enum_type))
    return all(
        (a is None) == (b is None) and (a is None or a.full_name == b.full_name) for a, b in kinds
    )


_PARAM_SPEC = {
    "param": "name",
    "blob_share_mode": "share_mode",
    "blobs_lr": "lr_mult",
    "weight_decay": "decay_mult",
}
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")
#: SolverParameter's legacy ``solver_type`` enum -> its ``type`` string (Caffe's table).
SOLVER_TYPES = {
    "SGD": "SGD",
    "NESTEROV": "Nesterov",
    "ADAGRAD": "AdaGrad",
    "RMSPROP": "RMSProp",
    "ADADELTA": "AdaDelta",
    "ADAM": "Adam",
}


def _block(field: Field) -> Block:
    assert isinstance(field.value, Block)
    return field.value


def _named(block: Block, name: str) -> list[Field]:
    return [f for f in block.fields if f.name.text == name]


def _raw(field: Field) -> str:
    assert isinstance(field.value, Scalar)
    return field.value.raw


def _old_batch_norm(layer: Any) -> bool:
    """A BatchNorm layer with the three ``param`` specs its old definition required."""
    return layer.type == "BatchNorm" and len(layer.param) == 3


def _net_needs_upgrade(net: Any) -> bool:
    """Caffe's ``NetNeedsUpgrade``: legacy layers, old transform fields, input header, BN."""
    return bool(len(net.layers) or len(net.input) or any(map(_old_batch_norm, net.layer)))


def _is_solver(doc: Document) -> bool:
    return doc.message_type.endswith(".SolverParameter")


def _is_net(doc: Document) -> bool:
    return doc.message_type.endswith(".NetParameter")


def needs_upgrade(doc: Document) -> bool:
    """Whether :func:`upgrade` has work: a legacy net (Caffe's ``NetNeedsUpgrade``), or a
    solver with ``solver_type`` (``SolverNeedsTypeUpgrade``) or a legacy inline net."""
    if _is_solver(doc):
        return doc.message.HasField("solver_type") or any(
            _net_needs_upgrade(net) for *_, net in inline_nets(doc)
        )
    return _is_net(doc) and _net_needs_upgrade(doc.message)


def upgrade(doc: Document) -> RewriteReport:
    """Upgrade ``doc`` (a net or a solver) in place; report each step taken (nothing when
    already current)."""
    if _is_solver(doc):
        return _upgrade_solver(doc)
    report = RewriteReport()
    if _is_net(doc) and _net_needs_upgrade(doc.message):
        _upgrade_net(doc, report)
    return report


def _upgrade_net(doc: Document, report: RewriteReport) -> None:
    report.changed += split_layer_lists(doc)
    tree = doc.tree
    net = doc.message
    v1 = [f for f in tree.fields if f.name.text == "layers"]
    if v1 and len(net.layer):
        raise InputError(
            "the net mixes 'layer' and 'layers'; Caffe refuses to upgrade it",
            doc.location(v1[0].pos),
        )
    if is_v0(tree.fields):
        upgrade_v0(doc, report)
        v1 = [f for f in tree.fields if f.name.text == "layers"]
    for field in v1:
        _upgrade_data_transform(doc, field, report)
    for field in v1:
        _upgrade_v1_layer(doc, field, report)
    _upgrade_input(doc, report)
    _upgrade_batch_norm(doc, report)


def _upgrade_solver(doc: Document) -> RewriteReport:
    """Caffe's ``UpgradeSolverAsNeeded`` (``solver_type`` enum -> ``type`` string), and
    every inline net upgraded as a net file would be."""
    report = RewriteReport()
    solver = doc.message
    for field in [f for f in doc.tree.fields if f.name.text == "solver_type"]:
        if solver.HasField("type"):
            raise InputError(
                "the solver gives both 'solver_type' and 'type'; Caffe refuses to upgrade it",
                doc.location(field.pos),
            )
        enum = solver.DESCRIPTOR.fields_by_name["solver_type"].enum_type
        old = enum.values_by_number[solver.solver_type].name
        if old not in SOLVER_TYPES:
            raise InputError(f"unknown solver_type {old}", doc.location(field.pos))
        assert isinstance(field.value, Scalar)
        doc.rename(field, "type")
        doc.replace_value(field, quote(SOLVER_TYPES[old]))
        report.changed.append(f"solver_type: {old} -> type: {quote(SOLVER_TYPES[old])}")
    for name, field, block, net in inline_nets(doc):
        if not _net_needs_upgrade(net):
            continue
        # The net's own indentation step, from its first line (the file may mix styles).
        outer = indent_of(field)
        first = indent_of(block.fields[0]) if block.fields else ""
        style = Style(doc.tree)
        unit = first[len(outer) :] if first.startswith(outer) and len(first) > len(outer) else ""
        sub = doc.nested(block, "NetParameter")
        inner = RewriteReport()
        _upgrade_net(sub, inner)
        if sub.tree.end.strip():
            block.close.pre = sub.tree.end + block.close.pre
        indent_block(block, outer, unit or style.unit, style.newline)
        report.changed += [f"{name}: {line}" for line in inner.changed]
        report.dropped += [f"{name}: {line}" for line in inner.dropped]
    return report


def transform_host(schema: Schema, v1: str) -> str | None:
    """The ``*_param`` field of V1 type ``v1`` whose old transformation fields Caffe's
    ``UpgradeNetDataTransformation`` moves: a BVLC data layer's whose message still declares
    them (Data, ImageData and WindowData); ``None`` for any other type."""
    entry = CATALOGUE.by_v1.get(v1)
    if entry is None or entry.origin != "BVLC" or not entry.has(DATA) or not entry.param_field:
        return None
    field = schema.descriptor("V1LayerParameter").fields_by_name.get(entry.param_field)
    message = field.message_type if field is not None else None
    if message is None or any(name not in message.fields_by_name for name in _TRANSFORM_FIELDS):
        return None
    return entry.param_field


def _upgrade_data_transform(doc: Document, field: Field, report: RewriteReport) -> None:
    block = _block(field)
    types = [_raw(f) for f in _named(block, "type")]
    host = transform_host(doc.schema, types[-1]) if types else None
    if host is None:
        return
    params = _named(block, host)
    if not params:
        return
    moving = [f for f in _block(params[-1]).fields if f.name.text in _TRANSFORM_FIELDS]
    if not moving:
        return
    existing = _named(block, "transform_param")
    text = "\n".join(f"{f.name.text}: {_raw(f)}" for f in moving)
    for moved in moving:
        doc.remove(_block(params[-1]), moved)
    if existing:
        doc.insert_fields(_block(existing[-1]), parse_fields(text))
    else:
        where = block.fields.index(params[-1])
        doc.insert_fields(block, parse_fields(f"transform_param {{\n{text}\n}}"), where)
    report.changed.append(
        f"layer {_name(block)}: {', '.join(f.name.text for f in moving)} moved to transform_param"
    )


def _name(block: Block) -> str:
    names = _named(block, "name")
    return _raw(names[0]) if names else "(unnamed)"


def _upgrade_v1_layer(doc: Document, field: Field, report: RewriteReport) -> None:
    block = _block(field)
    doc.rename(field, "layer")
    for type_field in _named(block, "type"):
        enum = _raw(type_field)
        if enum not in V1_TYPES:
            raise InputError(f"unknown V1 layer type {enum}", doc.location(type_field.pos))
        doc.replace_value(type_field, quote(V1_TYPES[enum]))
    specs: dict[int, list[str]] = {}
    for key, target in _PARAM_SPEC.items():
        for nth, (_, item) in enumerate(elements(block.fields, key)):
            assert isinstance(item, Scalar)  # binding refuses a block for these fields
            specs.setdefault(nth, []).append(f"{target}: {item.raw}")
    copied = copied_fields(doc.schema)
    dropped = [
        f
        for f in block.fields
        if f.name.text in _PARAM_SPEC or (f.name.text not in copied and f.name.text != "type")
    ]
    # The param blocks go where the first folded field was, among the fields that stay.
    first = next((i for i, f in enumerate(block.fields) if f.name.text in _PARAM_SPEC), 0)
    where = sum(1 for f in block.fields[:first] if f not in dropped)
    for gone in dropped:
        if gone.name.text not in _PARAM_SPEC:
            report.dropped.append(f"layer {_name(block)}: '{gone.name.text}' (Caffe drops it)")
        doc.remove(block, gone)
    if specs:
        text = "\n".join(f"param {{\n{chr(10).join(specs[i])}\n}}" for i in sorted(specs))
        doc.insert_fields(block, parse_fields(text), where)
    report.changed.append(f"layer {_name(block)}: V1 'layers' entry upgraded")


def _upgrade_input(doc: Document, report: RewriteReport) -> None:
    tree = doc.tree
    net = doc.message
    header = [f for f in tree.fields if f.name.text in LEGACY_HEADER]
    if not header:
        return
    inputs = list(net.input)
    shapes = legacy_input_shapes(net)
    first_layer = next(
        (i for i, f in enumerate(tree.fields) if f.name.text in ("layer", "layers")),
        len(tree.fields),
    )
    where = min(tree.fields.index(header[0]), first_layer)
    # The header is replaced, not deleted: its comments go with the Input layer that takes its
    # place (or to whatever follows when there is no layer to make).
    comments = "".join(f.leading for f in header)
    for gone in header:
        doc.remove(tree, gone)
    where = min(where, len(tree.fields))
    if shapes:
        tops = "\n".join(f"top: {quote(name)}" for name in inputs)
        blocks = "\n".join(
            "shape {\n" + "\n".join(f"dim: {d}" for d in shape) + "\n}" for shape in shapes
        )
        text = f'layer {{\nname: "input"\ntype: "Input"\n{tops}\ninput_param {{\n{blocks}\n}}\n}}'
        doc.insert_fields(tree, parse_fields(text), where)
        tree.fields[where].leading = comments + tree.fields[where].leading
        report.changed.append(f"input header -> Input layer 'input' ({', '.join(inputs)})")
    else:
        if where < len(tree.fields):
            tree.fields[where].leading = comments + tree.fields[where].leading
        else:
            tree.end = comments + tree.end
        report.changed.append("input header without shapes removed")


def _upgrade_batch_norm(doc: Document, report: RewriteReport) -> None:
    nodes = doc.elements(doc.tree, "layer")
    for layer, (_, block) in zip(doc.message.layer, nodes, strict=True):
        if _old_batch_norm(layer) and isinstance(block, Block):
            for gone in _named(block, "param"):
                doc.remove(block, gone)
            report.changed.append(f"layer {_name(block)}: BatchNorm's three param specs removed")


def as_loaded(doc: Document) -> Document:
    """``doc`` itself when current; else an upgraded copy, the net as Caffe loads it (what
    diff, draw and the receptive fields read).  The copy is parsed from the document's text,
    so places refer to that text."""
    if not doc.message_type.endswith(".NetParameter") or not needs_upgrade(doc):
        return doc
    copy = Document(parse(doc.dumps(), doc.path), doc.schema, doc.message_type, doc.lenient)
    upgrade(copy)
    return copy
