"""What the rewrites that carry weights share: their report, and the weights as arrays.

A weights object maps layer names to their parameter blobs (``protoedit.weights.Weights``,
or a plain ``dict`` of lists of arrays); these rewrites read it as arrays and never change
it: they return new weights in :attr:`WeightsReport.weights`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from protoedit.errors import InputError
from protoedit.rewrites.report import RewriteReport

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Arrays = dict[str, list[NDArray[Any]]]
    Inputs = dict[str, NDArray[np.float32]]


class WeightsMismatchError(InputError):
    """The weights do not fit the net where a rewrite needs them (a layer with no blobs,
    a blob of the wrong shape)."""


@dataclass
class WeightsReport(RewriteReport):
    """A rewrite's report and the weights of the rewritten net.

    ``carried`` maps each layer of the new net whose blobs are the old ones unchanged to
    its old name (what a check compares bitwise); ``blobs`` maps each blob of the new net
    that holds a value of the old one to the old name (``None``: same names where both
    nets have them); ``original_inputs`` turns inputs of the new net into the inputs that
    give the old one the same values (``None``: the same inputs).
    """

    weights: Any = None
    carried: dict[str, str] = field(default_factory=dict)
    blobs: dict[str, str] | None = None
    original_inputs: Callable[[Inputs], Inputs] | None = None


def arrays_of(weights: Any) -> Arrays:
    """``{layer: [arrays]}`` of a weights object (a ``Weights`` or a mapping of lists)."""
    if not isinstance(weights, Mapping):
        raise InputError(f"weights must map layer names to blobs, not {type(weights).__name__}")
    arrays: Arrays = {}
    for name, entry in weights.items():
        blobs: Any = getattr(entry, "blobs", entry)  # a LayerWeights, or its blobs
        arrays[str(name)] = list(blobs)
    return arrays


def types_of(weights: Any) -> dict[str, str]:
    """The layer type stored with each layer's weights, where the object keeps one."""
    if not isinstance(weights, Mapping):
        return {}
    return {
        str(name): str(entry.type)
        for name, entry in weights.items()
        if getattr(entry, "type", None)
    }


def weights_like(original: Any, arrays: Arrays, types: Mapping[str, str]) -> Any:
    """New weights of the same kind as ``original``: a ``Weights`` for a ``Weights``
    (``types`` gives each layer's type), a dict of lists otherwise."""
    if isinstance(original, dict) or not hasattr(type(original), "from_arrays"):
        return {name: list(blobs) for name, blobs in arrays.items()}
    known = {name: kind for name, kind in types.items() if name in arrays}
    return type(original).from_arrays(arrays, types=known)


def layer_blobs(arrays: Arrays, layer: str, kind: str, at_least: int) -> list[NDArray[Any]]:
    """The blobs of ``layer`` (of type ``kind``), refusing weights that have fewer than
    ``at_least`` of them."""
    blobs = arrays.get(layer)
    if blobs is None:
        raise WeightsMismatchError(f"the weights have no blobs for layer '{layer}' ({kind})")
    if len(blobs) < at_least:
        raise WeightsMismatchError(
            f"layer '{layer}' ({kind}) has {len(blobs)} blob{'s' if len(blobs) != 1 else ''} "
            f"in the weights, not {at_least}"
        )
    return blobs
