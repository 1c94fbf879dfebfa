"""Which layers a rewrite treats as data sources, label consumers or backward-less.

One place for the layer-type facts the rewrites share (``aux`` and ``to_deploy`` both need
them; keeping them here also keeps those two modules from importing each other).
"""

from __future__ import annotations

from typing import Any

#: Layers that read files or databases: a deploy net has an Input layer instead.
DATA_LAYERS = frozenset(
    ["Data", "ImageData", "HDF5Data", "MemoryData", "WindowData", "VideoData", "AnnotatedData"]
)
#: Layers that abort or need labels in backward; harmless to drop when not an ancestor.
NO_BACKWARD = frozenset(
    [
        "Accuracy",
        "ArgMax",
        "Threshold",
        "Filter",
        "BatchReindex",
        "Embed",
        "SoftmaxWithLoss",
        "EuclideanLoss",
        "SigmoidCrossEntropyLoss",
        "InfogainLoss",
        "HingeLoss",
        "MultinomialLogisticLoss",
        "ContrastiveLoss",
        "Silence",
        "HDF5Output",
    ]
)


def is_data_layer(layer: Any) -> bool:
    """A layer that feeds the net: a stock data layer, or a Python layer with tops and no
    bottoms (FCN's and LRCN's readers are Python layers)."""
    if layer.type in DATA_LAYERS:
        return True
    return layer.type == "Python" and not len(layer.bottom) and bool(len(layer.top))


def is_loss_or_accuracy(kind: str) -> bool:
    """A layer that compares with labels (fork losses such as ``MultiBoxLoss`` included)."""
    return kind.endswith("Loss") or kind == "Accuracy"
