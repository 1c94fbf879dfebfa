"""An interim auxiliary-net builder on protobuf ``text_format`` (drops comments and layout).

It serves the demo and the Caffe tests until the lossless rewrite engine lands: it sets
``force_backward`` and appends a loss head whose value is the mean of one channel of a blob,
built from stock layers only (Slice, Silence, Reduction).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from google.protobuf import text_format


def add_channel_mean_loss(
    net: Any, caffe_pb2: ModuleType, blob: str, channel: int, channels: int
) -> None:
    """Append to ``net`` (a ``caffe.NetParameter``) a loss = mean of ``blob[:, channel]``.

    ``channels`` is the blob's size on axis 1 (Slice refuses zero-width pieces, so the edge
    pieces are left out when the channel is the first or the last).  The loss top is a scalar
    (Reduction over every axis), so its loss weight cannot be lost to a later reshape.
    """
    if not 0 <= channel < channels:
        raise ValueError(f"channel {channel} is out of range: {blob!r} has {channels} channels")
    picked = f"aux_{blob}_c{channel}"
    pieces = [f"aux_{blob}_before", picked, f"aux_{blob}_after"]
    points = [channel, channel + 1]
    if channel == channels - 1:
        pieces, points = pieces[:-1], points[:-1]
    if channel == 0:
        pieces, points = pieces[1:], points[1:]
    if len(pieces) > 1:
        cut = net.layer.add(name=f"aux_slice_{blob}", type="Slice")
        cut.bottom.append(blob)
        cut.top.extend(pieces)
        cut.slice_param.axis = 1
        cut.slice_param.slice_point.extend(points)
        unused = [p for p in pieces if p != picked]
        silence = net.layer.add(name=f"aux_silence_{blob}", type="Silence")
        silence.bottom.extend(unused)
    else:
        picked = blob
    head = net.layer.add(name="aux_loss", type="Reduction")
    head.bottom.append(picked)
    head.top.append("aux_loss")
    head.reduction_param.operation = caffe_pb2.ReductionParameter.MEAN
    head.reduction_param.axis = 0
    head.loss_weight.append(1.0)


def channel_mean_aux_text(
    text: str, blob: str, channel: int, channels: int, force_backward: bool = True
) -> str:
    """The text of a net with a channel-mean loss head (and ``force_backward`` if asked)."""
    from caffe.proto import caffe_pb2  # the schema pycaffe was built with

    net = text_format.Parse(text, caffe_pb2.NetParameter())
    net.force_backward = force_backward
    add_channel_mean_loss(net, caffe_pb2, blob, channel, channels)
    return str(text_format.MessageToString(net))
