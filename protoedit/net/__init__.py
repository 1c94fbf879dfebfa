"""Caffe's net facts: the layer catalogue (:mod:`~protoedit.net.layers`), the ``FilterNet``
rules (:mod:`~protoedit.net.state`), the net view (layers, versioned blobs and data flow over a
loaded document) and static shape inference (:mod:`~protoedit.net.shapes`)."""

from protoedit.net.view import INPUT, BlobVersion, LayerInfo, LegacyNetError, NetView

__all__ = ["INPUT", "BlobVersion", "LayerInfo", "LegacyNetError", "NetView"]
