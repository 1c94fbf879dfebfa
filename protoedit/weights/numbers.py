"""The field numbers a caffemodel is walked by, read from the schema (a fork's included)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from protoedit.schema import Schema


@dataclass(frozen=True)
class Numbers:
    """Field numbers of ``NetParameter``, both layer formats and ``BlobProto``."""

    layer: int  # NetParameter.layer (LayerParameter)
    layers: int  # NetParameter.layers (V1LayerParameter)
    name: int
    type: int
    blobs: int
    v1_name: int
    v1_type: int
    v1_blobs: int
    v0_layer: int  # V1LayerParameter.layer: a V0 layer nested in a V1 one
    data: int
    double_data: int
    shape: int
    dim: int
    legacy: tuple[int, int, int, int]  # num, channels, height, width
    diffs: tuple[int, int]  # diff, double_diff


def _number(schema: Schema, message: str, field: str) -> int:
    return int(schema.descriptor(message).fields_by_name[field].number)


@lru_cache(maxsize=8)
def numbers(schema: Schema) -> Numbers:
    """The numbers of ``schema`` (cached per schema object)."""

    def n(message: str, field: str) -> int:
        return _number(schema, message, field)

    return Numbers(
        layer=n("NetParameter", "layer"),
        layers=n("NetParameter", "layers"),
        name=n("LayerParameter", "name"),
        type=n("LayerParameter", "type"),
        blobs=n("LayerParameter", "blobs"),
        v1_name=n("V1LayerParameter", "name"),
        v1_type=n("V1LayerParameter", "type"),
        v1_blobs=n("V1LayerParameter", "blobs"),
        v0_layer=n("V1LayerParameter", "layer"),
        data=n("BlobProto", "data"),
        double_data=n("BlobProto", "double_data"),
        shape=n("BlobProto", "shape"),
        dim=n("BlobShape", "dim"),
        legacy=(
            n("BlobProto", "num"),
            n("BlobProto", "channels"),
            n("BlobProto", "height"),
            n("BlobProto", "width"),
        ),
        diffs=(n("BlobProto", "diff"), n("BlobProto", "double_diff")),
    )
