"""Weights in memory: per stored layer its name, type and blobs as numpy arrays.

A :class:`Weights` is a mapping from layer name (file order) to :class:`LayerWeights`.  What
the file held besides the arrays (every other field of each layer and blob, fork fields
included) is kept as the bytes it was stored as, so that :func:`~protoedit.weights.save`
writes an unchanged model back byte for byte and never drops a field it does not know.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from protoedit.errors import Location
from protoedit.net.layers import CATALOGUE, param_blobs, param_key, param_roles
from protoedit.schema import Schema, load_schema
from protoedit.weights.errors import WeightsError

if TYPE_CHECKING:
    from protoedit.document import Document
    from protoedit.net.view import NetView

Shape = tuple[int, ...]
Array = npt.NDArray[Any]


@dataclass
class StoredBlob:
    """How one blob was stored: its other fields as bytes (``None`` marks where its values
    were), its shape as stored, whether that shape is the legacy 4-D one, and whether its
    values were ``double_data``."""

    segments: list[tuple[int, bytes | None]]
    shape: Shape
    legacy: bool
    double: bool


def as_blob(values: npt.ArrayLike) -> Array:
    """An array as a new blob holds it: float32, Caffe's type (only a blob read from
    ``double_data`` holds float64)."""
    return np.asarray(values, dtype=np.float32)


class LayerWeights:
    """One stored layer: ``name``, ``type`` (as stored: a V1 layer's enum name) and ``blobs``
    (numpy arrays, float32 unless stored as double, shaped as stored).  ``v1``: the layer is
    stored in the V1 ``layers`` format.  All four may be changed before saving."""

    def __init__(
        self,
        name: str,
        type: str = "",
        blobs: Iterable[npt.ArrayLike] = (),
        *,
        v1: bool = False,
    ) -> None:
        self.name = name
        self.type = type
        self.blobs: list[Array] = [as_blob(b) for b in blobs]
        self.v1 = v1
        # What the file held (empty for a layer built in memory):
        self.segments: list[tuple[int, bytes | None]] = []  # None: where the blobs were
        self.stored: list[StoredBlob] = []
        self.stored_name = name
        self.stored_type = type
        self.has_values = True  # False: read for its shapes only (``load(values=False)``)
        self._schema: Schema | None = None

    def __repr__(self) -> str:
        shapes = ", ".join("x".join(map(str, b.shape)) or "scalar" for b in self.blobs)
        return f"LayerWeights({self.name!r}, {self.type!r}, [{shapes}])"

    def shapes(self) -> list[tuple[Shape, bool]]:
        """Each blob's shape as stored and whether it is the legacy 4-D form (a blob changed
        in memory has its array's shape, in the current form)."""
        if not self.has_values:
            return [(blob.shape, blob.legacy) for blob in self.stored]
        shapes = []
        for k, blob in enumerate(self.blobs):
            stored = self.stored[k] if k < len(self.stored) else None
            if stored is not None and stored.shape == blob.shape:
                shapes.append((stored.shape, stored.legacy))
            else:
                shapes.append((tuple(int(d) for d in blob.shape), False))
        return shapes

    def message(self, schema: Schema | None = None) -> Any:
        """The layer's stored fields other than its blobs, as a ``LayerParameter`` (or
        ``V1LayerParameter``) of its schema: the ``*_param`` Caffe saved with the layer."""
        schema = schema or self._schema or load_schema(None)
        from protoedit.weights.caffemodel import layer_bytes

        kind = "V1LayerParameter" if self.v1 else "LayerParameter"
        message: Any = schema.message_class(kind)()
        try:
            message.ParseFromString(layer_bytes(self, schema, with_blobs=False))
        except Exception:  # protobuf's DecodeError and upb's variants
            raise WeightsError(
                f"layer '{self.name}': its fields do not parse as a {kind}"
            ) from None
        return message

    @property
    def catalogue_type(self) -> str:
        """The type as the catalogue names it (a V1 enum name mapped to today's name)."""
        entry = CATALOGUE.by_v1.get(self.type) if self.v1 else None
        return entry.name if entry is not None else self.type

    def roles(self, net_layer: Any = None) -> list[str]:
        """The role of each blob: from ``net_layer`` (a net's ``LayerParameter``) when given,
        else from the layer's own stored fields; ``blobK`` where the catalogue says nothing."""
        count = len(self.shapes())
        layer = net_layer
        if layer is None and not self.v1 and self.segments:
            try:
                layer = self.message()
            except WeightsError:
                layer = None
        if layer is not None:
            roles = param_blobs(layer)
            if roles is not None and len(roles) == count:
                return list(roles)
            return param_roles(layer.type, count, len(layer.bottom))
        return param_roles(self.catalogue_type, count)


@dataclass(eq=False)
class Weights(MutableMapping[str, LayerWeights]):
    """The layers of a weights file by name, in file order.

    ``layers`` holds every stored layer, duplicates included; as a mapping a name gives the
    last layer stored under it (the one whose values Caffe keeps) and :attr:`duplicates`
    names the others.  ``path`` names the file in messages.
    """

    layers: list[LayerWeights] = field(default_factory=list)
    path: str = "<weights>"
    schema: Schema = field(default_factory=lambda: load_schema(None))
    head: list[bytes] = field(default_factory=list)  # NetParameter fields before the layers
    tail: list[bytes] = field(default_factory=list)  # and after them
    size: int | None = None  # bytes of the file read (None: built in memory)

    def __post_init__(self) -> None:
        for layer in self.layers:
            layer._schema = self.schema

    # -- mapping -----------------------------------------------------------------------

    def _last(self) -> dict[str, LayerWeights]:
        found: dict[str, LayerWeights] = {}
        for layer in self.layers:
            found.setdefault(layer.name, layer)
        for layer in self.layers:
            found[layer.name] = layer
        return found

    def __getitem__(self, name: str) -> LayerWeights:
        for layer in reversed(self.layers):
            if layer.name == name:
                return layer
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._last())

    def __len__(self) -> int:
        return len(self._last())

    def __contains__(self, name: object) -> bool:
        return any(layer.name == name for layer in self.layers)

    def __setitem__(self, name: str, layer: LayerWeights) -> None:
        """Put ``layer`` under ``name`` (renaming it), where the first layer of that name was
        (its duplicates go), or at the end."""
        layer.name = name
        layer._schema = self.schema
        places = [k for k, stored in enumerate(self.layers) if stored.name == name]
        if not places:
            self.layers.append(layer)
            return
        self.layers[places[0]] = layer
        for k in reversed(places[1:]):
            del self.layers[k]

    def __delitem__(self, name: str) -> None:
        kept = [layer for layer in self.layers if layer.name != name]
        if len(kept) == len(self.layers):
            raise KeyError(name)
        self.layers[:] = kept

    def rename(self, old: str, new: str) -> None:
        """Rename the layer(s) stored as ``old``; refuse a ``new`` name already stored."""
        if old not in self:
            raise KeyError(old)
        if new in self and new != old:
            raise WeightsError(f"cannot rename '{old}': '{new}' is stored already", self.where)
        for layer in self.layers:
            if layer.name == old:
                layer.name = new

    # -- views -------------------------------------------------------------------------

    @property
    def where(self) -> Location:
        """The file, for messages."""
        return Location(self.path)

    @property
    def duplicates(self) -> list[str]:
        """Names stored for more than one layer (Caffe keeps the last one's values)."""
        seen: dict[str, int] = {}
        for layer in self.layers:
            seen[layer.name] = seen.get(layer.name, 0) + 1
        return [name for name, count in seen.items() if count > 1]

    def with_blobs(self) -> list[LayerWeights]:
        """The stored layers that hold blobs, in file order (Caffe saves every layer)."""
        return [layer for layer in self.layers if layer.shapes()]

    @property
    def has_values(self) -> bool:
        """False when read for the shapes only (``load(values=False)``)."""
        return all(layer.has_values for layer in self.layers)

    def named(self, doc_or_net: Document | NetView | None = None) -> dict[str, Array]:
        """Every blob under ``LAYER/ROLE`` (``conv1/weight``, ``bn1/mean``); roles come from the
        net's layer of the same name when a net is given, else from the stored layer."""
        if self.duplicates:
            names = ", ".join(repr(n) for n in self.duplicates)
            raise WeightsError(f"layer names stored twice: {names}", self.where)
        if not self.has_values:
            raise WeightsError("the weights were read without their values", self.where)
        by_name = net_layers(doc_or_net) if doc_or_net is not None else {}
        named: dict[str, Array] = {}
        for layer in self.with_blobs():
            roles = layer.roles(by_name.get(layer.name))
            for role, blob in zip(roles, layer.blobs, strict=True):
                named[param_key(layer.name, role)] = blob
        return named

    @property
    def count(self) -> int:
        """How many values the blobs hold in all."""
        return sum(int(b.size) for layer in self.layers for b in layer.blobs)

    # -- building ----------------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping[str, Sequence[npt.ArrayLike]],
        *,
        types: Mapping[str, str] | None = None,
        schema: str | Schema | None = None,
        path: str = "<weights>",
    ) -> Weights:
        """Weights built in memory: ``{layer: [blob, ...]}`` in order, ``types`` by layer name
        (a layer without one is stored without a type; Caffe copies by name only)."""
        types = types or {}
        layers = [LayerWeights(name, types.get(name, ""), blobs) for name, blobs in arrays.items()]
        return cls(layers, path=path, schema=load_schema(schema))


def net_layers(doc_or_net: Document | NetView) -> dict[str, Any]:
    """The ``LayerParameter`` of each layer of a net, by name (the last of a duplicate)."""
    message = doc_or_net.doc.message if hasattr(doc_or_net, "doc") else doc_or_net.message
    return {layer.name: layer for layer in message.layer}
