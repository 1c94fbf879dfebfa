"""Caffe's net facts: the layer catalogue (:mod:`~protoedit.net.layers`), the ``FilterNet``
rules (:mod:`~protoedit.net.state`), the legacy input header (:mod:`~protoedit.net.inputs`),
the net view (layers, versioned blobs and data flow over a loaded document), static shape
inference (:mod:`~protoedit.net.shapes`) and the summary built on it: parameters and FLOPs
(:mod:`~protoedit.net.costs`), receptive fields (:mod:`~protoedit.net.receptive`), the table
(:mod:`~protoedit.net.summary`).

The view's names are imported on first use, so ``protoedit.net.layers`` loads without
protobuf or Lark: the Caffe child reads the catalogue (PEP 562)."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from protoedit.net.view import INPUT, BlobVersion, LayerInfo, LegacyNetError, NetView

_VIEW = frozenset(["INPUT", "BlobVersion", "LayerInfo", "LegacyNetError", "NetView"])


def __getattr__(name: str) -> Any:
    """Import the net view when one of its names is first used."""
    if name not in _VIEW:
        raise AttributeError(f"module 'protoedit.net' has no attribute {name!r}")
    value = getattr(import_module("protoedit.net.view"), name)
    globals()[name] = value
    return value


__all__ = ["INPUT", "BlobVersion", "LayerInfo", "LegacyNetError", "NetView"]
