"""What ``protoedit weights show`` prints: each blob's shape, count and simple statistics."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from protoedit.net.layers import param_key
from protoedit.weights.model import Array, Shape, Weights, net_layers

if TYPE_CHECKING:
    from protoedit.document import Document
    from protoedit.net.view import NetView


@dataclass(frozen=True)
class BlobStats:
    """One blob: where it is, its shape and values at a glance (``None`` for an empty blob)."""

    key: str  # LAYER/ROLE
    layer: str
    role: str
    shape: Shape
    count: int
    dtype: str
    min: float | None
    max: float | None
    mean: float | None
    std: float | None


@dataclass
class LayerStats:
    """One stored layer with blobs."""

    name: str
    type: str
    blobs: list[BlobStats] = field(default_factory=list)


def blob_stats(layer: str, role: str, blob: Array) -> BlobStats:
    """The statistics of one blob, in float64 whatever its type."""
    count = int(blob.size)
    values: tuple[float | None, ...] = (None, None, None, None)
    if count:
        flat = blob.reshape(-1)
        values = (
            float(flat.min()),
            float(flat.max()),
            float(flat.mean(dtype=np.float64)),
            float(flat.std(dtype=np.float64)),
        )
    shape = tuple(int(d) for d in blob.shape)
    return BlobStats(param_key(layer, role), layer, role, shape, count, str(blob.dtype), *values)


def describe(weights: Weights, net: Document | NetView | None = None) -> list[LayerStats]:
    """Per stored layer with blobs (file order), each blob's statistics; roles come from the
    net's layer of the same name when ``net`` is given."""
    layers = net_layers(net) if net is not None else {}
    found = []
    for layer in weights.with_blobs():
        roles = layer.roles(layers.get(layer.name))
        stats = [blob_stats(layer.name, r, b) for r, b in zip(roles, layer.blobs, strict=True)]
        found.append(LayerStats(layer.name, layer.type, stats))
    return found


def as_json(layers: list[LayerStats]) -> dict[str, Any]:
    """The statistics as JSON-ready data, with the totals."""
    blobs = [b for layer in layers for b in layer.blobs]
    return {
        "layers": [asdict(layer) for layer in layers],
        "total": {
            "layers": len(layers),
            "blobs": len(blobs),
            "count": sum(b.count for b in blobs),
            "bytes": sum(b.count * np.dtype(b.dtype).itemsize for b in blobs),
        },
    }
