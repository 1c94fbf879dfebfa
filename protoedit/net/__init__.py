"""The net view: layers, versioned blobs and data flow over a loaded document."""

from protoedit.net.view import INPUT, BlobVersion, LayerInfo, LegacyNetError, NetView

__all__ = ["INPUT", "BlobVersion", "LayerInfo", "LegacyNetError", "NetView"]
