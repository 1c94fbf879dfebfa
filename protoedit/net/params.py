"""The shapes of a layer's parameter blobs, from its parameters and its input shapes.

What Caffe's layer setup allocates: a weights file must hold blobs of these shapes (checked
by :func:`protoedit.weights.match`), and a summary counts parameters from them.  The rules
are picked by the catalogue's shape rule (convolution, deconvolution, inner product) or by
the ``*_param`` field a type reads, so no list of type names is kept here; a type without a
rule gives ``None`` for every blob (unknown, never guessed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from protoedit.net.layers import layer_type, param_blobs
from protoedit.net.shapes import _Problem, _spatial

Shape = tuple[int, ...]
_Rule = Callable[[Any, Any, list[Sequence[int]]], dict[str, Shape]]


def _kernel(param: Any, shape: Sequence[int]) -> list[int]:
    axes = len(shape) - 2
    return _spatial(param.kernel_size, param.kernel_h, param.kernel_w, axes, 0, "kernel")


def _conv(layer: Any, param: Any, ins: list[Sequence[int]]) -> dict[str, Shape]:
    group = max(int(param.group), 1)
    channels = int(ins[0][1]) // group
    weight = (int(param.num_output), channels, *_kernel(param, ins[0]))
    return {"weight": weight, "bias": (int(param.num_output),)}


def _deconv(layer: Any, param: Any, ins: list[Sequence[int]]) -> dict[str, Shape]:
    group = max(int(param.group), 1)
    weight = (int(ins[0][1]), int(param.num_output) // group, *_kernel(param, ins[0]))
    return {"weight": weight, "bias": (int(param.num_output),)}


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _inner_product(layer: Any, param: Any, ins: list[Sequence[int]]) -> dict[str, Shape]:
    outputs = int(param.num_output)
    inputs = math.prod(int(d) for d in ins[0][_axis(int(param.axis), len(ins[0])) :])
    weight = (inputs, outputs) if param.transpose else (outputs, inputs)
    return {"weight": weight, "bias": (outputs,)}


def _embed(layer: Any, param: Any, ins: list[Sequence[int]]) -> dict[str, Shape]:
    outputs = int(param.num_output)
    return {"weight": (int(param.input_dim), outputs), "bias": (outputs,)}


def _channels(ins: list[Sequence[int]]) -> int:
    return int(ins[0][1]) if len(ins[0]) > 1 else 1


def _batch_norm(layer: Any, param: Any, ins: list[Sequence[int]]) -> dict[str, Shape]:
    channels = _channels(ins)
    return {"mean": (channels,), "variance": (channels,), "scale_factor": (1,)}


def _scale_or_bias(layer: Any, param: Any, ins: list[Sequence[int]]) -> dict[str, Shape]:
    """Scale and Bias: the axes ``axis`` .. ``axis + num_axes`` of the first input (the
    second input's shape, when a second input supplies the multipliers)."""
    if len(ins) > 1:
        shape = tuple(int(d) for d in ins[1])
    else:
        first = _axis(int(param.axis), len(ins[0]))
        count = int(param.num_axes)
        shape = tuple(
            int(d) for d in (ins[0][first:] if count < 0 else ins[0][first : first + count])
        )
    return {"scale": shape, "bias": shape}


def _prelu(layer: Any, param: Any, ins: list[Sequence[int]]) -> dict[str, Shape]:
    return {"slope": () if param.channel_shared else (_channels(ins),)}


#: Rules by the catalogue's shape rule name, then by the ``*_param`` field a type reads.
_BY_SHAPE_RULE: dict[str, _Rule] = {
    "conv": _conv,
    "deconv": _deconv,
    "inner_product": _inner_product,
}
_BY_PARAM_FIELD: dict[str, _Rule] = {
    "embed_param": _embed,
    "batch_norm_param": _batch_norm,
    "scale_param": _scale_or_bias,
    "bias_param": _scale_or_bias,
    "prelu_param": _prelu,
}


def param_shapes(layer: Any, ins: Sequence[Sequence[int] | None]) -> list[Shape | None] | None:
    """The shape of each parameter blob of ``layer`` (a ``LayerParameter``), in Caffe's order
    (:func:`~protoedit.net.layers.param_blobs`), for inputs of shapes ``ins``; ``None`` in
    place of a shape that cannot be told, ``None`` for a type the catalogue does not know."""
    roles = param_blobs(layer)
    entry = layer_type(layer.type)
    if roles is None or entry is None:
        return None
    rule = _BY_SHAPE_RULE.get(entry.shape or "") or _BY_PARAM_FIELD.get(entry.param_field or "")
    known = [s for s in ins if s is not None]
    if rule is None or not known or len(known) != len(ins):
        return [None] * len(roles)
    param = getattr(layer, entry.param_field) if entry.param_field else None
    try:
        shapes = rule(layer, param, known)
    except (_Problem, ArithmeticError, IndexError, ValueError, TypeError):
        return [None] * len(roles)
    return [shapes.get(role) for role in roles]
