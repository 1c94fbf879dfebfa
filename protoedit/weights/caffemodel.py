"""Read and write ``.caffemodel`` files (binary ``NetParameter``) without Caffe.

The file is walked field by field (:mod:`protoedit.weights.wire`) with the field numbers of
the schema in use (:mod:`protoedit.weights.numbers`): each blob's values are read once,
straight from the file into their numpy array, so reading peaks at little more than the
file's size; every other field is kept as its stored bytes.  Writing puts those bytes back
around freshly encoded values, in the order Caffe writes them, so an unchanged model is
written back byte for byte.  Lengths are 64-bit throughout: nothing is cut at 2 GiB.
"""

from __future__ import annotations

import mmap
import os
import stat
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from protoedit.errors import Location
from protoedit.files import write_atomic_bytes
from protoedit.schema import Schema, load_schema
from protoedit.weights import wire
from protoedit.weights.errors import MIXED_FORMATS, WeightsError, WeightsWarning
from protoedit.weights.fit import MAX_MESSAGE
from protoedit.weights.model import Array, LayerWeights, Shape, StoredBlob, Weights
from protoedit.weights.numbers import Numbers, numbers

#: Bytes asked of the system per read call (Linux returns at most about 2 GiB per call).
READ_CHUNK = 1 << 30

Chunk = bytes | memoryview


# -- reading --------------------------------------------------------------------------------


def load(
    path: str | os.PathLike[str], *, schema: str | Schema | None = None, values: bool = True
) -> Weights:
    """The weights stored in ``path`` (a ``.caffemodel``), read with ``schema`` (protoedit's
    own by default; a fork's ``caffe.proto`` path or :class:`Schema` for its models).

    ``values=False`` reads names, types and shapes only (what :func:`match` needs), at no cost
    in memory; such weights cannot be saved or exported.
    """
    return _Reader(path, load_schema(schema), read_values=values).read()


def stored_shapes(
    path: str | os.PathLike[str], *, schema: str | Schema | None = None
) -> dict[str, list[tuple[Shape, bool]]]:
    """Per stored layer with blobs, each blob's shape and whether it is the legacy 4-D form;
    the values are not read (cheap on any size of file)."""
    weights = load(path, schema=schema, values=False)
    return {layer.name: layer.shapes() for layer in weights.with_blobs()}


class _Reader:
    """One reading of one file: the walk, with errors located at the file."""

    def __init__(self, path: str | os.PathLike[str], schema: Schema, read_values: bool) -> None:
        self.path = str(path)
        self.schema = schema
        self.numbers: Numbers = numbers(schema)
        self.read_values = read_values
        self.fd = -1

    def error(self, message: str) -> WeightsError:
        return WeightsError(message, Location(self.path))

    def read(self) -> Weights:
        try:
            self.fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise self.error(f"cannot read weights file: {exc.strerror or exc}") from None
        try:
            info = os.fstat(self.fd)
            if not stat.S_ISREG(info.st_mode):
                raise self.error("cannot read weights file: not a regular file")
            if info.st_size == 0:
                raise self.error("not a Caffe weights file: it holds no layers (it is empty)")
            with mmap.mmap(self.fd, 0, access=mmap.ACCESS_READ) as view:
                try:
                    return self._net(view, info.st_size)
                except wire.WireError as exc:
                    raise self.error(
                        f"not a Caffe weights file, or a damaged one: {exc} "
                        f"(byte {exc.offset} of {info.st_size})"
                    ) from None
        finally:
            os.close(self.fd)

    def _net(self, view: mmap.mmap, size: int) -> Weights:
        n = self.numbers
        head: list[bytes] = []
        tail: list[bytes] = []
        layers: list[LayerWeights] = []
        for field in wire.fields(view, 0, size):
            if field.number in (n.layer, n.layers) and field.wire == wire.LEN:
                layers.append(self._layer(view, field, v1=field.number == n.layers))
            else:
                (tail if layers else head).append(view[field.start : field.end])
        if not layers:
            raise self.error("not a Caffe weights file: it holds no layers")
        return Weights(layers, path=self.path, schema=self.schema, head=head, tail=tail, size=size)

    def _text(self, view: mmap.mmap, field: wire.Field) -> str:
        try:
            return view[field.value : field.end].decode("utf-8")
        except UnicodeDecodeError:
            raise wire.WireError("a layer name or type is not UTF-8 text", field.value) from None

    def _layer(self, view: mmap.mmap, field: wire.Field, v1: bool) -> LayerWeights:
        n = self.numbers
        name_no, type_no, blobs_no = (
            (n.v1_name, n.v1_type, n.v1_blobs) if v1 else (n.name, n.type, n.blobs)
        )
        layer = LayerWeights("", v1=v1)
        layer.has_values = self.read_values
        for part in wire.fields(view, field.value, field.end):
            if part.number == blobs_no and part.wire == wire.LEN:
                if (blobs_no, None) not in layer.segments:
                    layer.segments.append((blobs_no, None))
                self._blob(view, part, layer)
                continue
            if v1 and part.number == n.v0_layer and part.wire == wire.LEN:
                raise self.error(
                    "a V0 model (layers nested as 'layers { layer { ... } }'): upgrade it "
                    "with Caffe's upgrade_net_proto_binary first"
                )
            layer.segments.append((part.number, view[part.start : part.end]))
            if part.number == name_no and part.wire == wire.LEN:
                layer.name = self._text(view, part)
            elif part.number == type_no and part.wire == wire.LEN and not v1:
                layer.type = self._text(view, part)
            elif part.number == type_no and part.wire == wire.VARINT and v1:
                layer.type = self._v1_type(wire.read_varint(view, part.value, part.end)[0])
        layer.stored_name, layer.stored_type = layer.name, layer.type
        return layer

    def _v1_type(self, number: int) -> str:
        field = self.schema.descriptor("V1LayerParameter").fields_by_name["type"]
        value = field.enum_type.values_by_number.get(number) if field.enum_type else None
        return str(value.name) if value is not None else str(number)

    def _blob(self, view: mmap.mmap, field: wire.Field, layer: LayerWeights) -> None:
        n = self.numbers
        parts = list(wire.fields(view, field.value, field.end))
        double = any(p.number == n.double_data for p in parts)
        value_no, itemsize = (n.double_data, 8) if double else (n.data, 4)
        single = wire.FIXED64 if double else wire.FIXED32
        segments: list[tuple[int, bytes | None]] = []
        chunks: list[tuple[int, int]] = []  # (offset, bytes) of the values, in order
        dims: list[int] | None = None
        legacy = [0, 0, 0, 0]
        for part in parts:
            if part.number == value_no and part.wire in (wire.LEN, single):
                if (part.end - part.value) % itemsize:
                    raise wire.WireError("a blob's values do not fill whole numbers", part.value)
                if not chunks:
                    segments.append((value_no, None))
                chunks.append((part.value, part.end - part.value))
                continue
            segments.append((part.number, view[part.start : part.end]))
            if part.number == n.shape and part.wire == wire.LEN:
                dims = (dims or []) + self._dims(view, part)
            elif part.number in n.legacy and part.wire == wire.VARINT:
                value = wire.read_varint(view, part.value, part.end)[0]
                legacy[n.legacy.index(part.number)] = wire.signed(value)
        shape = tuple(dims) if dims is not None else tuple(legacy)
        count = sum(size for _, size in chunks) // itemsize
        where = f"layer '{layer.name}' blob {len(layer.stored)}"
        if any(d < 0 for d in shape):
            raise self.error(f"{where} has a negative extent: {_dims(shape)}")
        if count != int(np.prod(shape, dtype=np.int64)):
            raise self.error(
                f"{where} holds {count} values but its shape {_dims(shape)} says "
                f"{int(np.prod(shape, dtype=np.int64))}"
            )
        layer.stored.append(StoredBlob(segments, shape, dims is None, double))
        if self.read_values:
            layer.blobs.append(self._values(chunks, count, double).reshape(shape))

    def _dims(self, view: mmap.mmap, field: wire.Field) -> list[int]:
        dims: list[int] = []
        for part in wire.fields(view, field.value, field.end):
            if part.number != self.numbers.dim:
                continue
            if part.wire == wire.LEN:
                dims.extend(wire.signed(v) for v in wire.packed_varints(view, part.value, part.end))
            elif part.wire == wire.VARINT:
                dims.append(wire.signed(wire.read_varint(view, part.value, part.end)[0]))
        return dims

    def _values(self, chunks: list[tuple[int, int]], count: int, double: bool) -> Array:
        """The values read from the file into a new array (no copy in between)."""
        array = np.empty(count, dtype="<f8" if double else "<f4")
        target = memoryview(array.data).cast("B")
        pos = 0
        for offset, size in chunks:
            done = 0
            while done < size:
                step = min(size - done, READ_CHUNK)
                got = os.preadv(self.fd, [target[pos + done : pos + done + step]], offset + done)
                if got <= 0:
                    raise wire.WireError("the file ended while its values were read", offset)
                done += got
            pos += size
        return array


def layer_from_message(message: Any, blobs: list[Array]) -> LayerWeights:
    """A stored layer as Caffe saves one: the net's ``LayerParameter`` (its ``blobs``
    left out) followed by ``blobs``."""
    copy = type(message)()
    copy.CopyFrom(message)
    copy.ClearField("blobs")
    data = copy.SerializeToString()
    layer = LayerWeights(message.name, message.type, blobs)
    layer.segments = [(f.number, data[f.start : f.end]) for f in wire.fields(data, 0, len(data))]
    return layer


def _dims(shape: Shape) -> str:
    return " x ".join(str(d) for d in shape) or "scalar"


# -- writing --------------------------------------------------------------------------------


def save(weights: Weights, path: str | os.PathLike[str]) -> list[Path]:
    """Write ``weights`` to ``path`` as a ``.caffemodel``, atomically; returns ``[path]``.

    Unchanged layers and blobs are written as they were read; a blob whose shape changed gets
    a ``shape`` field (its stored ``diff``, now stale, is left out).  Blobs read as
    ``double_data`` stay double; every other blob is written as float32.
    """
    n = numbers(weights.schema)
    if not weights.has_values:
        raise WeightsError("the weights were read without their values", Location(str(path)))
    if len({layer.v1 for layer in weights.layers}) > 1:
        raise WeightsError(MIXED_FORMATS, Location(str(path)))
    chunks: list[Chunk] = list(weights.head)
    for layer in weights.layers:
        body = layer_chunks(layer, weights.schema)
        chunks.append(wire.length_prefix(n.layers if layer.v1 else n.layer, _size(body)))
        chunks.extend(body)
    chunks.extend(weights.tail)
    total = _size(chunks)
    if total > MAX_MESSAGE:
        warnings.warn(
            WeightsWarning(
                f"{path}: {total} bytes, over the 2 GiB (INT_MAX) that protobuf and so Caffe "
                "read in one binary model: Caffe will refuse this file"
            ),
            stacklevel=2,
        )
    write_atomic_bytes(path, chunks)
    return [Path(path)]


def _size(chunks: list[Chunk]) -> int:
    return sum(len(c) if isinstance(c, bytes) else c.nbytes for c in chunks)


def layer_bytes(layer: LayerWeights, schema: Schema, *, with_blobs: bool = True) -> bytes:
    """The layer's message as bytes (blobs left out unless ``with_blobs``)."""
    chunks = layer_chunks(layer, schema, with_blobs=with_blobs)
    return b"".join(bytes(c) for c in chunks)


def _insert(segments: list[tuple[int, bytes | None]], number: int, raw: bytes | None) -> None:
    """Put a field where Caffe would write it: before the first field numbered above it."""
    at = next((k for k, (num, _) in enumerate(segments) if num > number), len(segments))
    segments.insert(at, (number, raw))


def _replace(segments: list[tuple[int, bytes | None]], number: int, raw: bytes | None) -> None:
    """Set the one field ``number`` (its first place, or where Caffe would write it)."""
    places = [k for k, (num, _) in enumerate(segments) if num == number]
    if not places:
        if raw is not None:
            _insert(segments, number, raw)
        return
    for k in reversed(places[1:]):
        del segments[k]
    if raw is None:
        del segments[places[0]]
    else:
        segments[places[0]] = (number, raw)


def layer_chunks(layer: LayerWeights, schema: Schema, *, with_blobs: bool = True) -> list[Chunk]:
    """The encoded fields of one layer, in order: its stored bytes where nothing changed."""
    n = numbers(schema)
    name_no, type_no, blobs_no = (
        (n.v1_name, n.v1_type, n.v1_blobs) if layer.v1 else (n.name, n.type, n.blobs)
    )
    segments = list(layer.segments)
    fresh = not segments  # built in memory
    if layer.name != layer.stored_name or fresh:
        _replace(segments, name_no, wire.string_field(name_no, layer.name))
    if layer.type != layer.stored_type or fresh:
        _replace(segments, type_no, _type_field(layer, schema, type_no) if layer.type else None)
    if (blobs_no, None) not in segments and layer.blobs:
        _insert(segments, blobs_no, None)
    out: list[Chunk] = []
    for _, raw in segments:
        if raw is not None:
            out.append(raw)
        elif with_blobs:
            for k, blob in enumerate(layer.blobs):
                stored = layer.stored[k] if k < len(layer.stored) else None
                out.extend(_blob_chunks(blob, stored, n, blobs_no))
    return out


def _type_field(layer: LayerWeights, schema: Schema, number: int) -> bytes:
    if not layer.v1:
        return wire.string_field(number, layer.type)
    field = schema.descriptor("V1LayerParameter").fields_by_name["type"]
    value = field.enum_type.values_by_name.get(layer.type) if field.enum_type else None
    if value is None and not layer.type.isdigit():
        raise WeightsError(f"layer '{layer.name}': '{layer.type}' is no V1 layer type")
    return wire.varint_field(number, value.number if value is not None else int(layer.type))


def _blob_chunks(blob: Array, stored: StoredBlob | None, n: Numbers, blobs_no: int) -> list[Chunk]:
    """One ``blobs`` field: the values encoded as Caffe packs them, the rest as stored."""
    double = stored is not None and stored.double
    array = np.ascontiguousarray(blob, dtype="<f8" if double else "<f4")
    value_no = n.double_data if double else n.data
    values = memoryview(array.reshape(-1).data).cast("B")
    encoded: list[Chunk] = [wire.length_prefix(value_no, values.nbytes), values]
    shape = tuple(int(d) for d in array.shape)
    if stored is not None and stored.shape == shape:
        segments = list(stored.segments)
    else:
        dropped = {*n.legacy, *n.diffs, n.shape, n.data, n.double_data}
        kept = stored.segments if stored is not None else []
        segments = [(num, raw) for num, raw in kept if num not in dropped]
        _insert(segments, n.shape, _shape_field(shape, n))
    if (value_no, None) not in segments and values.nbytes:
        _insert(segments, value_no, None)
    body: list[Chunk] = []
    for _, raw in segments:
        body.extend([raw] if raw is not None else encoded if values.nbytes else [])
    return [wire.length_prefix(blobs_no, _size(body)), *body]


def _shape_field(shape: Shape, n: Numbers) -> bytes:
    """A ``BlobShape`` with ``dim`` packed, as Caffe writes it."""
    packed = b"".join(wire.varint(d) for d in shape)
    inner = wire.length_prefix(n.dim, len(packed)) + packed if shape else b""
    return wire.length_prefix(n.shape, len(inner)) + inner
