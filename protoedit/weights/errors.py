"""The error of the weights package (kept apart so that the Caffe worker imports it cheaply)."""

from __future__ import annotations

from protoedit.errors import InputError, ProtoeditWarning


class WeightsError(InputError):
    """A weights file is missing, unreadable, not a caffemodel, or does not fit the net."""


class WeightsWarning(ProtoeditWarning):
    """Weights that Caffe accepts but that leave part of the net untrained (layers missing)."""


#: Caffe refuses a file (net or weights) with both V1 ``layers`` and ``layer``.
MIXED_FORMATS = "the weights file mixes V1 'layers' and 'layer', which Caffe refuses to read"
