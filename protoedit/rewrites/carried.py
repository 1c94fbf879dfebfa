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


def weights_like(
    original: Any,
    arrays: Arrays,
    types: Mapping[str, str],
    renamed: Mapping[str, str] | None = None,
) -> Any:
    """New weights of the same kind as ``original``, layers in the order of ``arrays``.

    For a ``Weights``, each layer that was stored (under its old name ``renamed[name]``
    when renamed) keeps what the file held besides its blobs (fields of forks, the V1
    format); ``types`` gives a changed layer type (the catalogue's name).  Otherwise a
    dict of lists.
    """
    if isinstance(original, dict) or not hasattr(original, "layers"):
        return {name: list(blobs) for name, blobs in arrays.items()}
    import copy

    from protoedit.net.layers import layer_type

    renamed = renamed or {}
    stored = {layer.name: layer for layer in original.layers}  # the last of a duplicate
    layers = []
    for name, blobs in arrays.items():
        before = stored.get(renamed.get(name, name))
        kind = types.get(name, "")
        if before is None:
            layer = _layer_class()(name, kind, blobs)
        else:
            layer = copy.copy(before)
            layer.name = name
            layer.blobs = [b if b is old else _float32(b) for b, old in _pairs(blobs, before)]
            if kind and kind != before.catalogue_type:
                entry = layer_type(kind)
                layer.type = entry.v1 if before.v1 and entry is not None and entry.v1 else kind
        layers.append(layer)
    return type(original)(
        layers,
        path=original.path,
        schema=original.schema,
        head=list(original.head),
        tail=list(original.tail),
    )


def _layer_class() -> Any:
    from protoedit.weights import LayerWeights

    return LayerWeights


def _pairs(blobs: list[Any], before: Any) -> list[tuple[Any, Any]]:
    """Each new blob with the stored layer's blob at its place (None past its end)."""
    old = list(before.blobs)
    return [(b, old[k] if k < len(old) else None) for k, b in enumerate(blobs)]


def _float32(blob: Any) -> Any:
    import numpy as np

    return np.asarray(blob, dtype=np.float32)


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
