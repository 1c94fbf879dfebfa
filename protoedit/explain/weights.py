"""Read a ``.caffemodel`` without Caffe and check that its blobs fit a net.

Caffe aborts the whole process when a stored blob's shape differs from the net's; reading the
file with protobuf first lets the worker name the layer and both shapes instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from protoedit.errors import InputError, Location
from protoedit.schema import read_binary

Shape = tuple[int, ...]


class WeightsError(InputError):
    """A weights file is missing, unreadable, not a caffemodel, or does not fit the net."""


def read_weights(path: str | os.PathLike[str]) -> Any:
    """The file parsed as a binary ``NetParameter`` (what Caffe writes as ``.caffemodel``)."""
    where = Location(str(path))
    message = read_binary(
        path,
        "NetParameter",
        "weights file",
        "not a Caffe weights file (binary NetParameter)",
        WeightsError,
    )
    if not (len(message.layer) or len(message.layers)):  # an empty file parses to nothing
        raise WeightsError("not a Caffe weights file: it holds no layers", where)
    return message


def _blob_shape(blob: Any) -> Shape:
    if blob.HasField("shape"):
        return tuple(int(d) for d in blob.shape.dim)
    return (int(blob.num), int(blob.channels), int(blob.height), int(blob.width))


def stored_shapes(message: Any) -> dict[str, list[tuple[Shape, bool]]]:
    """Per layer name, each stored blob's shape and whether it is in the legacy 4-D form."""
    layers = list(message.layer) or list(message.layers)
    return {
        layer.name: [(_blob_shape(b), not b.HasField("shape")) for b in layer.blobs]
        for layer in layers
        if len(layer.blobs)
    }


def _fits(expected: Shape, stored: Shape, legacy: bool) -> bool:
    """Caffe's rule: a legacy blob matches the net's shape padded to 4 axes with leading 1s."""
    if legacy:
        return len(expected) <= 4 and (1,) * (4 - len(expected)) + expected == stored
    return expected == stored


def _dims(shape: Shape) -> str:
    return " x ".join(str(d) for d in shape) or "scalar"


def misfits(
    expected: Mapping[str, Sequence[Shape]],
    stored: Mapping[str, Sequence[tuple[Shape, bool]]],
    roles: Mapping[str, Sequence[str]],
) -> list[str]:
    """One sentence per layer whose stored blobs differ from the net's (count or shape).

    Layers the file does not hold keep their initial values, as in Caffe; they are not misfits.
    """
    problems = []
    for layer, shapes in expected.items():
        if layer not in stored:
            continue
        held = stored[layer]
        if len(held) != len(shapes):
            problems.append(
                f"layer '{layer}' has {len(shapes)} parameter blobs in the net, "
                f"{len(held)} in the weights file"
            )
            continue
        for nth, (shape, (have, legacy)) in enumerate(zip(shapes, held, strict=True)):
            if not _fits(tuple(shape), have, legacy):
                role = roles[layer][nth]
                problems.append(
                    f"layer '{layer}' {role}: the net expects {_dims(tuple(shape))}, "
                    f"the weights file has {_dims(have)}"
                )
    return problems
