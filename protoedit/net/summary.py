"""The summary of a net without Caffe: per layer its output shapes, parameters, FLOPs,
activation memory and the receptive field of its output, with totals.

Built on static shape inference (:mod:`protoedit.net.shapes`), the cost formulas
(:mod:`protoedit.net.costs`) and receptive fields (:mod:`protoedit.net.receptive`).  Where a
rule is missing the row says so and names the type (``unknown``), and the totals say they
are partial: nothing is guessed.  With ``weights`` the parameter counts come from the file,
and a layer whose stored blobs differ from what the net declares is flagged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from protoedit.errors import InputError, InvalidArgumentError
from protoedit.net.costs import CONVENTION, Cost, Unknown, layer_cost, param_shapes
from protoedit.net.inputs import header_shapes
from protoedit.net.layers import layer_type
from protoedit.net.receptive import Field, ReceptiveField, field_map, view_of
from protoedit.net.shapes import Shape, forward_shapes, layer_shapes
from protoedit.net.view import INPUT, BlobVersion, LayerInfo, NetView

if TYPE_CHECKING:
    from protoedit.document import Document

#: Bytes per value: Caffe computes in float32.
BYTES_PER_VALUE = 4
#: Stored parameter shapes by layer name, as a weights file gives them.
StoredShapes = Mapping[str, Sequence[Sequence[int]]]
#: One stored blob: its shape and whether it is in the legacy 4-D form.
Stored = tuple[Shape, bool]


@dataclass(frozen=True)
class LayerRow:
    """One layer (or a legacy header input) of the summary.

    ``None`` in a number means unknown; ``unknown`` says why, one reason per missing
    number.  ``memory`` is the bytes of the values the layer adds (an in-place layer adds
    none).  ``fields`` is each top's receptive field (``None``: it does not depend on the
    input, or it is unknown).  ``stored_params`` is the count in the weights file, and
    ``mismatch`` says how the file differs from the net (with ``weights`` only).  ``shared``
    is how many of ``params`` an earlier layer owns (Caffe's ``param { name: ... }``): the
    totals count them once.
    """

    name: str
    type: str
    tops: tuple[str, ...]
    shapes: tuple[Shape | None, ...]
    params: int | None
    macs: int | None
    flops: int | None
    memory: int | None
    fields: tuple[ReceptiveField | None, ...] = ()
    in_place: bool = False
    unknown: tuple[str, ...] = ()
    stored_params: int | None = None
    mismatch: str | None = None
    shared: int = 0

    @property
    def param_bytes(self) -> int | None:
        """The parameters' size in bytes (float32)."""
        return None if self.params is None else self.params * BYTES_PER_VALUE

    def to_json(self) -> dict[str, Any]:
        """The row as a JSON object (receptive fields as size, stride and offset lists)."""
        return {
            "name": self.name,
            "type": self.type,
            "tops": list(self.tops),
            "shapes": [s for s in self.shapes],
            "params": self.params,
            "param_bytes": self.param_bytes,
            "macs": self.macs,
            "flops": self.flops,
            "memory": self.memory,
            "in_place": self.in_place,
            "receptive_fields": [
                None
                if f is None
                else {"size": list(f.size), "stride": list(f.stride), "offset": list(f.offset)}
                for f in self.fields
            ],
            "unknown": list(self.unknown),
            "stored_params": self.stored_params,
            "mismatch": self.mismatch,
            "shared": self.shared,
        }


@dataclass(frozen=True)
class Totals:
    """Sums over the rows; ``partial`` names the rows whose numbers were unknown (the sums
    then count the known ones only)."""

    params: int
    macs: int
    flops: int
    memory: int
    partial: tuple[str, ...] = ()
    stored_params: int | None = None
    mismatches: int = 0

    @property
    def param_bytes(self) -> int:
        """The parameters' size in bytes (float32)."""
        return self.params * BYTES_PER_VALUE


@dataclass
class Summary:
    """A net's summary: one row per layer (file order, the phase's layers), the totals,
    what the receptive fields are measured on, and the FLOPs convention."""

    rows: list[LayerRow]
    totals: Totals
    input: str | None
    convention: str = CONVENTION
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The summary as one JSON object."""
        t = self.totals
        return {
            "convention": self.convention,
            "receptive_fields_of": self.input,
            "layers": [row.to_json() for row in self.rows],
            "total": {
                "params": t.params,
                "param_bytes": t.param_bytes,
                "macs": t.macs,
                "flops": t.flops,
                "memory": t.memory,
                "partial": list(t.partial),
                "stored_params": t.stored_params,
                "mismatches": t.mismatches,
            },
            "notes": self.notes,
        }


def _stored(weights: str | os.PathLike[str] | StoredShapes | Any) -> dict[str, list[Stored]]:
    """Each stored layer's blob shapes and whether each is in the legacy 4-D form, from a
    weights file, a loaded :class:`protoedit.weights.Weights`, or shapes by layer name
    (taken as stored with a ``shape``)."""
    if isinstance(weights, str | os.PathLike):
        from protoedit.weights import stored_shapes

        return {
            name: [(list(shape), legacy) for shape, legacy in blobs]
            for name, blobs in stored_shapes(weights).items()
        }
    found: dict[str, list[Stored]] = {}
    for name, value in weights.items():
        if hasattr(value, "shapes"):  # a LayerWeights knows how each blob was stored
            found[name] = [(list(shape), legacy) for shape, legacy in value.shapes()]
        else:
            found[name] = [(list(shape), False) for shape in value]
    return found


def _fits(stored: list[Stored], declared: list[Shape]) -> bool:
    """Caffe's rule, blob by blob (:func:`protoedit.weights.fit.fits`)."""
    from protoedit.weights.fit import fits

    return len(stored) == len(declared) and all(
        fits(tuple(d), tuple(s), legacy) for (s, legacy), d in zip(stored, declared, strict=True)
    )


def _dims(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def human(value: int | None, bytes_: bool = False) -> str:
    """``25.6M``, ``3.87G``, ``588K`` (``?`` unknown); bytes in binary units (``2.3 MiB``)."""
    if value is None:
        return "?"
    base, units = (
        (1024, ("B", "KiB", "MiB", "GiB", "TiB")) if bytes_ else (1000, ("", "K", "M", "G", "T"))
    )
    scaled, unit = float(value), units[0]
    for unit in units:
        if abs(scaled) < base or unit == units[-1]:
            break
        scaled /= base
    if unit == units[0]:
        return f"{value}{' B' if bytes_ else ''}"
    return f"{scaled:.3g}{' ' if bytes_ else ''}{unit}"


def _input_shapes(
    view: NetView, input_shape: Shape | Mapping[str, Shape] | None, batch: int | None
) -> dict[str, Shape]:
    """The input shapes to summarise at: the declared ones, ``input_shape`` (one shape for a
    net with one input, or shapes by input name), then ``batch`` on axis 0 of each."""
    declared: dict[str, Shape | None] = dict.fromkeys(view.doc.message.input)
    declared |= header_shapes(view.doc.message)
    for info in view.layers:
        if not info.reads:  # Input and data layers: only the Input rule reads no bottom
            outs = layer_shapes(view, info, []) if info.type == "Input" else []
            for nth, write in enumerate(info.writes):
                declared[write.blob] = outs[nth] if nth < len(outs) else None
    given: dict[str, Shape] = {}
    if isinstance(input_shape, Mapping):
        for name, shape in input_shape.items():
            if name not in declared:
                raise InvalidArgumentError(
                    f"'{name}' is not an input of the net ({', '.join(declared)})", "input_shape"
                )
            given[name] = list(shape)
    elif input_shape is not None:
        if len(declared) != 1:
            names = ", ".join(declared) or "none"
            raise InvalidArgumentError(
                f"the net has {len(declared)} inputs ({names}): name the one to shape",
                "input_shape",
            )
        given[next(iter(declared))] = list(input_shape)
    if batch is not None:
        if batch < 1:
            raise InvalidArgumentError(f"the batch must be at least 1, got {batch}", "batch")
        for name, known in declared.items():
            current = given.get(name, known)
            if current:
                given[name] = [batch, *current[1:]]
    return given


def shape_causes(
    view: NetView, shapes: Mapping[BlobVersion, Shape | None]
) -> dict[BlobVersion, str]:
    """Why each value without a shape has none, by its root: the layer (or input) where
    shapes were first lost, so that everything after it gives the same reason."""
    causes: dict[BlobVersion, str] = {}
    for name in view.doc.message.input:
        if shapes.get(BlobVersion(name, INPUT)) is None:
            causes[BlobVersion(name, INPUT)] = f"the input '{name}' has no declared shape"
    for info in view.layers:
        inherited = next((causes[r] for r in info.reads if r in causes), None)
        for write in info.writes:
            if shapes.get(write) is not None:
                continue
            if inherited is not None:
                causes[write] = inherited
            elif getattr(layer_type(info.type), "shape", None) is None:
                causes[write] = f"{info.type} layer '{info.name}' has no shape rule"
            else:
                causes[write] = f"{info.type} layer '{info.name}' declares no shape"
    return causes


def _layer_row(
    info: LayerInfo,
    shapes: Mapping[BlobVersion, Shape | None],
    causes: Mapping[BlobVersion, str],
    fields: Mapping[BlobVersion, Field],
    stored: dict[str, list[Stored]] | None,
    owners: set[str],
) -> LayerRow:
    """The row of one layer; ``owners`` holds the shared parameter names (``param { name }``)
    seen so far, whose blobs a later layer uses but does not own."""
    ins = [shapes.get(r) for r in info.reads]
    outs = [shapes.get(w) for w in info.writes]
    known_ins = [s for s in ins if s is not None] if None not in ins else []
    known_outs = [s for s in outs if s is not None] if None not in outs else []
    unknown: list[str] = []
    cause = next((causes[v] for v in [*info.reads, *info.writes] if v in causes), None)
    if cause is not None:
        unknown.append(f"shape: {cause}")
    params: int | None = None
    declared: list[Shape] | None = None
    try:
        declared = param_shapes(info, known_ins)
        params = sum(math.prod(s) for s in declared)
    except Unknown as exc:
        if cause is None or not exc.shapes:
            unknown.append(f"params: {exc}")
    shared = 0
    for k, spec in enumerate(info.param.param):
        if spec.name and spec.name in owners and declared is not None and k < len(declared):
            shared += math.prod(declared[k])
        owners.update([spec.name] if spec.name else [])
    cost: Cost | None = None
    try:
        cost = layer_cost(info, known_ins, known_outs)
    except Unknown as exc:
        if cause is None or not exc.shapes:
            unknown.append(f"FLOPs: {exc}")
    reads = info.reads
    in_place = [nth < len(reads) and w.blob == reads[nth].blob for nth, w in enumerate(info.writes)]
    fresh = [s for s, same in zip(outs, in_place, strict=True) if not same]
    values = [math.prod(s) for s in fresh if s is not None]  # a scalar ([]) is one value
    memory = None if len(values) < len(fresh) else sum(values) * BYTES_PER_VALUE
    field_list = [fields.get(w) for w in info.writes]
    reasons = [f for f in field_list if isinstance(f, str)]
    if reasons:
        unknown.append(f"receptive field: {reasons[0]}")
    stored_count, mismatch = None, None
    if stored is not None:
        blobs = stored.get(info.name)
        if blobs is not None:
            stored_count = sum(math.prod(s) for s, _ in blobs)
            if declared is not None and not _fits(blobs, declared):
                held = ", ".join(_dims(s) for s, _ in blobs) or "no blobs"
                wanted = ", ".join(map(_dims, declared)) or "none"
                mismatch = f"the weights file holds {held}, the net declares {wanted}"
        elif params:
            mismatch = "not in the weights file (Caffe leaves its parameters as initialised)"
    return LayerRow(
        info.name,
        info.type,
        tuple(w.blob for w in info.writes),
        tuple(outs),
        params if stored_count is None else stored_count,
        None if cost is None else cost.macs,
        None if cost is None else cost.flops,
        memory,
        tuple(f if isinstance(f, ReceptiveField) else None for f in field_list),
        any(in_place),  # Caffe's rule, as LayerInfo.in_place (from the tops, faster)
        tuple(unknown),
        stored_count,
        mismatch,
        shared,
    )


def summarise_view(
    view: NetView,
    *,
    input_shape: Shape | Mapping[str, Shape] | None = None,
    batch: int | None = None,
    weights: str | os.PathLike[str] | StoredShapes | Any | None = None,
    input: str | None = None,
) -> Summary:
    """:func:`summary` of a net view (its layers in file order)."""
    given = _input_shapes(view, input_shape, batch)
    shapes = forward_shapes(view, given)
    notes: list[str] = []
    try:
        start, fields = field_map(view, shapes, input)
        measured: str | None = start.blob
    except InputError as exc:
        if input is not None:
            raise
        measured, fields = None, {}
        notes.append(f"no receptive fields: {exc}")
    stored = None if weights is None else _stored(weights)
    rows = [
        LayerRow(
            name,
            "input",
            (name,),
            (shapes.get(BlobVersion(name, INPUT)),),
            0,
            0,
            0,
            _bytes(shapes.get(BlobVersion(name, INPUT))),
            (_field(fields.get(BlobVersion(name, INPUT))),),
        )
        for name in view.doc.message.input
    ]
    causes = shape_causes(view, shapes)
    owners: set[str] = set()
    rows += [_layer_row(info, shapes, causes, fields, stored, owners) for info in view.layers]
    if stored is not None:
        unused = sorted(set(stored) - {info.name for info in view.layers})
        if unused:
            notes.append(f"layers in the weights file that the net lacks: {', '.join(unused)}")
    return Summary(rows, _totals(rows, stored is not None), measured, notes=notes)


def _bytes(shape: Shape | None) -> int | None:
    return None if shape is None else math.prod(shape) * BYTES_PER_VALUE


def _field(value: Field) -> ReceptiveField | None:
    return value if isinstance(value, ReceptiveField) else None


def _totals(rows: list[LayerRow], with_weights: bool) -> Totals:
    """The sums of the known numbers (shared parameters once), and the rows with unknown
    ones."""

    def total(values: list[int | None]) -> int:
        return sum(v for v in values if v is not None)

    def owned(values: list[int | None]) -> int:
        return total(
            [None if v is None else v - r.shared for v, r in zip(values, rows, strict=True)]
        )

    partial = tuple(r.name for r in rows if None in (r.params, r.macs, r.flops, r.memory))
    return Totals(
        owned([r.params for r in rows]),
        total([r.macs for r in rows]),
        total([r.flops for r in rows]),
        total([r.memory for r in rows]),
        partial,
        owned([r.stored_params for r in rows]) if with_weights else None,
        sum(1 for r in rows if r.mismatch),
    )


def summary(
    doc: Document,
    *,
    input_shape: Shape | Mapping[str, Shape] | None = None,
    batch: int | None = None,
    weights: str | os.PathLike[str] | StoredShapes | Any | None = None,
    input: str | None = None,
    phase: str | None = "TEST",
) -> Summary:
    """The summary of ``doc`` as Caffe builds it in ``phase`` (legacy nets upgraded in
    memory): a :class:`LayerRow` per layer and the :class:`Totals`.

    ``input_shape`` replaces the declared input shape (one shape, or shapes by input name);
    ``batch`` sets axis 0 of every input; ``weights`` (a ``.caffemodel`` path, a loaded
    weights object, or parameter shapes by layer name) gives the parameter counts and flags
    layers that differ from the net; receptive fields are measured on ``input`` (default:
    the net's first input).  A layer whose parameters give no valid shape raises a located
    :class:`InputError`.
    """
    view = view_of(doc, phase)
    return summarise_view(view, input_shape=input_shape, batch=batch, weights=weights, input=input)
