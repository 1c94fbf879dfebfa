"""Mappings of the element-wise layers: ReLU (leaky), PReLU, Sigmoid, TanH, ELU, AbsVal,
BNLL, Power, Exp, Log, Clip, Swish, Threshold and the fork activations ReLU6, HardSwish,
HardSigmoid."""

from __future__ import annotations

import math

from protoedit.export.mapping import Layer, mapping


def _simple(kind: str, op: str) -> None:
    mapping(kind)(lambda layer: [layer.one(op, layer.inputs)])


_simple("Sigmoid", "Sigmoid")
_simple("TanH", "Tanh")
_simple("AbsVal", "Abs")
_simple("BNLL", "Softplus")  # log(1 + exp(x)), computed stably by Caffe and by ONNX


@mapping("ReLU")
def _relu(layer: Layer) -> list[str]:
    slope = float(layer.param.negative_slope)
    if slope:
        return [layer.one("LeakyRelu", layer.inputs, alpha=slope)]
    return [layer.one("Relu", layer.inputs)]


@mapping("ReLU6")
def _relu6(layer: Layer) -> list[str]:
    """``min(max(x, 0) + negative_slope * min(x, 0), threshold)`` (the brocolli build; the
    threshold is 6 by default)."""
    p = layer.param
    g = layer.graph
    top = float(p.threshold) if p is not None and p.HasField("threshold") else 6.0
    slope = float(p.negative_slope) if p is not None else 0.0
    if slope:
        leaky = g.one("LeakyRelu", layer.inputs, layer.hint("leaky"), alpha=slope)
        return [layer.one("Min", [leaky, g.const(top, layer.hint("max"))])]
    low, high = g.const(0.0, layer.hint("min")), g.const(top, layer.hint("max"))
    return [layer.one("Clip", [layer.inputs[0], low, high])]


def _prelu_params(p: object, ins: list[list[int]]) -> list[list[int]]:
    shared = bool(getattr(p, "channel_shared", False))
    return [[1] if shared else [ins[0][1] if len(ins[0]) > 1 else 1]]


@mapping("PReLU", params=_prelu_params, init="slope")
def _prelu(layer: Layer) -> list[str]:
    """The slope is per channel (axis 1): shaped [C, 1, ..] so it broadcasts over the pixels."""
    rank = len(layer.shapes[0])
    slope = layer.blobs[0]
    shape = [1] if slope.size == 1 else [slope.size, *([1] * (rank - 2))]
    return [layer.one("PRelu", [layer.inputs[0], layer.blob(0, "slope", shape)])]


@mapping("ELU")
def _elu(layer: Layer) -> list[str]:
    return [layer.one("Elu", layer.inputs, alpha=float(layer.param.alpha))]


@mapping("Clip")
def _clip(layer: Layer) -> list[str]:
    g = layer.graph
    p = layer.param
    return [
        layer.one(
            "Clip",
            [layer.inputs[0], g.const(p.min, layer.hint("min")), g.const(p.max, layer.hint("max"))],
        )
    ]


def _affine(layer: Layer, scale: float, shift: float) -> str:
    """``shift + scale * x`` (the input itself when it is x)."""
    g = layer.graph
    x = layer.inputs[0]
    if scale != 1:
        x = g.one("Mul", [x, g.const(scale, layer.hint("scale"))], layer.hint("scaled"))
    if shift != 0:
        x = g.one("Add", [x, g.const(shift, layer.hint("shift"))], layer.hint("shifted"))
    return x


@mapping("Power")
def _power(layer: Layer) -> list[str]:
    """``(shift + scale * x) ^ power``."""
    p = layer.param
    base = _affine(layer, p.scale, p.shift)
    if p.power == 1:
        return [layer.one("Identity", [base])]
    return [layer.one("Pow", [base, layer.graph.const(p.power, layer.hint("power"))])]


@mapping("Exp")
def _exp(layer: Layer) -> list[str]:
    """``base ^ (shift + scale * x)``; base -1 means e."""
    p = layer.param
    ln_base = 1.0 if p.base == -1 else math.log(p.base)
    return [layer.one("Exp", [_affine(layer, p.scale * ln_base, p.shift * ln_base)])]


@mapping("Log")
def _log(layer: Layer) -> list[str]:
    """``log_base(shift + scale * x)``; base -1 means e."""
    p = layer.param
    inner = _affine(layer, p.scale, p.shift)
    if p.base == -1:
        return [layer.one("Log", [inner])]
    g = layer.graph
    natural = g.one("Log", [inner], layer.hint("ln"))
    return [layer.one("Mul", [natural, g.const(1.0 / math.log(p.base), layer.hint("inv_ln_base"))])]


@mapping("Swish")
def _swish(layer: Layer) -> list[str]:
    """``x * sigmoid(beta * x)``."""
    g = layer.graph
    beta = float(layer.param.beta)
    x = layer.inputs[0]
    arg = x if beta == 1 else g.one("Mul", [x, g.const(beta, layer.hint("beta"))], layer.hint("bx"))
    gate = g.one("Sigmoid", [arg], layer.hint("gate"))
    return [layer.one("Mul", [x, gate])]


@mapping("Threshold")
def _threshold(layer: Layer) -> list[str]:
    """1 where ``x > threshold``, else 0."""
    g = layer.graph
    above = g.one(
        "Greater",
        [layer.inputs[0], g.const(layer.param.threshold, layer.hint("t"))],
        layer.hint("above"),
    )
    return [layer.one("Cast", [above], to=1)]


@mapping("HardSigmoid")
def _hard_sigmoid(layer: Layer) -> list[str]:
    p = layer.param
    return [layer.one("HardSigmoid", layer.inputs, alpha=float(p.alpha), beta=float(p.beta))]


@mapping("HardSwish")
def _hard_swish(layer: Layer) -> list[str]:
    """``x * relu6(x + 3) / 6``."""
    g = layer.graph
    gate = g.one("HardSigmoid", layer.inputs, layer.hint("gate"), alpha=1 / 6, beta=0.5)
    return [layer.one("Mul", [layer.inputs[0], gate])]
