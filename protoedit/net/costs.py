"""What one layer costs: its parameter blobs' shapes and its multiply-adds and other FLOPs.

The formula of each type is named in the catalogue (:func:`protoedit.net.layers.summary_rules`,
whose comment states each in words); this module implements them from the layer's parameters
and its inferred input and output shapes.  The convention: a multiply-add (MAC) is 2 FLOPs,
any other arithmetic operation 1; data movement (Concat, Crop, Reshape, Split) costs nothing.
A type without a formula, or without a parameter rule, gives a reason instead of a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from protoedit.net.layers import ACCURACY, DATA, LOSS, layer_type, summary_rules
from protoedit.net.params import param_shapes as blob_shapes
from protoedit.net.shapes import Shape, conv_window, pool_window
from protoedit.net.view import LayerInfo

CONVENTION = "FLOPs = 2 x MACs (multiply-adds) + other operations; parameters as float32"


@dataclass(frozen=True)
class Cost:
    """Multiply-adds and other arithmetic operations of one forward pass of one layer."""

    macs: int
    ops: int = 0

    @property
    def flops(self) -> int:
        """A multiply-add counts 2 FLOPs, any other operation 1."""
        return 2 * self.macs + self.ops


class Unknown(Exception):
    """A cost or a parameter count cannot be told (the message says why); ``shapes``: only
    because shapes it needs are unknown."""

    def __init__(self, message: str, shapes: bool = False) -> None:
        super().__init__(message)
        self.shapes = shapes


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _message(info: LayerInfo, field: str) -> Any:
    message = getattr(info.param, field, None)
    if message is None:
        raise Unknown(f"the schema lacks {field}")
    return message


def param_shapes(info: LayerInfo, ins: list[Shape]) -> list[Shape]:
    """The shapes of the parameter blobs Caffe gives the layer, in Caffe's order (the rules
    of :mod:`protoedit.net.params`); a type whose blobs the catalogue does not list counts
    none only when it is known to have none (a summary row, a data, loss or accuracy type)."""
    shapes = blob_shapes(info.param, ins or [None])
    entry = layer_type(info.type)
    if shapes is None or entry is None:
        raise Unknown(f"{info.type} is not in the layer catalogue")
    if not shapes and not entry.roles:
        known = summary_rules(info.type)[0] is not None
        if not known and not any(entry.has(c) for c in (DATA, LOSS, ACCURACY)):
            raise Unknown(f"the catalogue lists no parameter blobs for {info.type}")
    if any(s is None for s in shapes):
        if not ins:
            raise Unknown("its input shapes are unknown", shapes=True)
        raise Unknown(f"no parameter rule for {info.type}")
    return [list(s) for s in shapes if s is not None]


def _count(shape: Shape) -> int:
    return math.prod(shape)


def layer_cost(info: LayerInfo, ins: list[Shape], outs: list[Shape]) -> Cost:
    """The layer's forward cost at the given shapes, by its type's formula."""
    formula = summary_rules(info.type)[0]
    if formula is None:
        raise Unknown(f"no FLOPs formula for {info.type}")
    if formula == "free":
        return Cost(0)
    if not ins or not outs:
        raise Unknown("its shapes are unknown", shapes=True)
    out = _count(outs[0])
    if formula in ("conv", "deconv"):
        conv = _message(info, "convolution_param")
        kernel = math.prod(conv_window(conv, len(ins[0]) - 2)[0])
        group = int(conv.group)
        bias = sum(_count(o) for o in outs) if conv.bias_term else 0
        if formula == "conv":
            return Cost(sum(_count(o) for o in outs) * (ins[0][1] // group) * kernel, bias)
        return Cost(sum(_count(i) for i in ins) * (outs[0][1] // group) * kernel, bias)
    if formula == "inner_product":
        ip = _message(info, "inner_product_param")
        axis = _axis(ip.axis, len(ins[0]))
        return Cost(out * _count(ins[0][axis:]), out if ip.bias_term else 0)
    if formula == "pool":
        pool = _message(info, "pooling_param")
        if pool.global_pooling:
            return Cost(0, _count(ins[0]))
        return Cost(0, out * math.prod(pool_window(pool)[0]))
    if formula == "eltwise":
        eltwise = _message(info, "eltwise_param")
        extra = len(ins) * out if eltwise.operation == 1 and len(eltwise.coeff) else 0  # SUM
        return Cost(0, (len(ins) - 1) * out + extra)
    if formula == "scale":
        param = getattr(info.param, "scale_param", None)
        bias = param is not None and param.bias_term
        return Cost(out) if bias or info.type == "BN" else Cost(0, out)
    if formula == "lrn":
        lrn = _message(info, "lrn_param")
        size = int(lrn.local_size) ** (2 if lrn.norm_region == 1 else 1)
        return Cost(out * size, 2 * out)
    if formula == "reduction":
        return Cost(0, _count(ins[0]))
    per_element = {"elementwise": (0, 1), "batchnorm": (0, 2), "axpy": (1, 0)}
    per_element |= {"softmax": (0, 3), "normalize": (1, 2)}
    if formula not in per_element:
        raise Unknown(f"unknown FLOPs formula {formula!r}")
    macs, ops = per_element[formula]
    return Cost(macs * out, ops * out)
