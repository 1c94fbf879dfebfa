"""Caffe weights without Caffe: ``.caffemodel`` files read and written byte for byte, their
blobs as numpy arrays named ``layer/role``, and the one rule by which weights meet a net.

``load(path)`` gives a :class:`Weights` (a mapping from layer name, in file order, to
:class:`LayerWeights`: ``name``, ``type``, ``blobs``); ``save(weights, path)`` writes it back
atomically; ``Weights.from_arrays`` builds one in memory.  ``match(net, weights)`` says
which layers that learn were found or are missing, which stored names match no layer (with
the nearest names), duplicates and wrong shapes; ``require_match`` applies the policy every
command uses.  Names are imported on first use (PEP 562): the Caffe worker imports
:mod:`protoedit.weights.fit` without numpy's or the schema's cost.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from protoedit.weights.errors import WeightsError, WeightsWarning

if TYPE_CHECKING:
    from protoedit.weights.caffemodel import load, save, stored_shapes
    from protoedit.weights.matching import (
        BlobMismatch,
        CountMismatch,
        WeightsMatch,
        match,
        require_match,
    )
    from protoedit.weights.model import LayerWeights, Weights

_LAZY = {
    "load": "protoedit.weights.caffemodel",
    "save": "protoedit.weights.caffemodel",
    "stored_shapes": "protoedit.weights.caffemodel",
    "BlobMismatch": "protoedit.weights.matching",
    "CountMismatch": "protoedit.weights.matching",
    "WeightsMatch": "protoedit.weights.matching",
    "match": "protoedit.weights.matching",
    "require_match": "protoedit.weights.matching",
    "LayerWeights": "protoedit.weights.model",
    "Weights": "protoedit.weights.model",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module when the name is first used."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'protoedit.weights' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BlobMismatch",
    "CountMismatch",
    "LayerWeights",
    "Weights",
    "WeightsError",
    "WeightsMatch",
    "WeightsWarning",
    "load",
    "match",
    "require_match",
    "save",
    "stored_shapes",
]
