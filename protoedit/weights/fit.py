"""Caffe's rule for a stored blob fitting a net's blob, without imports that cost time.

The Caffe worker imports this module (:mod:`protoedit.explain.worker`), so it needs nothing
beyond the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Shape = tuple[int, ...]

#: The largest binary message protobuf (and so Caffe) reads: ``INT_MAX`` bytes.
MAX_MESSAGE = 2**31 - 1


def fits(expected: Shape, stored: Shape, legacy: bool) -> bool:
    """Caffe's rule (``Blob::ShapeEquals``): a blob stored in the legacy 4-D form matches the
    net's shape padded to 4 axes with leading 1s; a blob with a ``shape`` must equal it."""
    expected, stored = tuple(expected), tuple(stored)
    if legacy:
        return len(expected) <= 4 and (1,) * (4 - len(expected)) + expected == stored
    return expected == stored


def dims(shape: Sequence[int]) -> str:
    """``64 x 3 x 7 x 7`` (``scalar`` for no axes)."""
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
            if not fits(tuple(shape), tuple(have), legacy):
                problems.append(
                    f"layer '{layer}' {roles[layer][nth]}: the net expects {dims(shape)}, "
                    f"the weights file has {dims(have)}"
                )
    return problems
