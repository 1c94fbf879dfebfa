"""Mappings of the layers with weights or windows: convolutions, InnerProduct, Pooling,
BatchNorm, Scale, Bias, LRN.  Each keeps Caffe's exact semantics (the docstrings say which
trap each one avoids)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from protoedit.export.mapping import (
    Layer,
    LayerRefused,
    Shape,
    axis_of,
    broadcast_shape,
    mapping,
    spatial,
)


def _conv_geometry(p: Any, rank: int) -> dict[str, list[int]]:
    axes = rank - 2
    return {
        "kernel": spatial(p, "kernel", axes, 0),
        "pad": spatial(p, "pad", axes, 0),
        "stride": spatial(p, "stride", axes, 1),
        "dilation": spatial(p, "dilation", axes, 1),
    }


def _groups(p: Any, channels: int, depthwise: bool) -> int:
    return channels if depthwise else int(p.group)


def _conv_params(depthwise: bool, deconv: bool) -> Any:
    def params(p: Any, ins: list[Shape]) -> list[Shape]:
        channels = ins[0][1]
        group = _groups(p, channels, depthwise)
        kernel = _conv_geometry(p, len(ins[0]))["kernel"]
        if deconv:
            weight = [channels, int(p.num_output) // group, *kernel]
        else:
            weight = [int(p.num_output), channels // group, *kernel]
        return [weight, [int(p.num_output)]] if p.bias_term else [weight]

    return params


def _conv_shape(depthwise: bool, deconv: bool = False) -> Any:
    def shape(p: Any, ins: list[Shape], tops: int) -> list[Shape]:
        g = _conv_geometry(p, len(ins[0]))
        out = []
        geometry = zip(ins[0][2:], g["kernel"], g["pad"], g["stride"], g["dilation"], strict=True)
        for size, k, pad, s, d in geometry:
            extent = d * (k - 1) + 1
            out.append(
                s * (size - 1) + extent - 2 * pad if deconv else (size + 2 * pad - extent) // s + 1
            )
        if min(out, default=1) < 1:
            raise LayerRefused(f"the output would be {out}")
        return [[ins[0][0], int(p.num_output), *out] for _ in range(tops)]

    return shape


def _emit_conv(layer: Layer, depthwise: bool, deconv: bool) -> list[str]:
    p = layer.param
    if len(layer.inputs) != 1:
        raise LayerRefused("a convolution of several bottoms has no ONNX form here")
    channels = layer.shapes[0][1]
    group = _groups(p, channels, depthwise)
    if channels % group or int(p.num_output) % group:
        raise LayerRefused(
            f"{channels} inputs and {p.num_output} outputs do not split into {group} groups"
        )
    g = _conv_geometry(p, len(layer.shapes[0]))
    inputs = [layer.inputs[0], layer.blob(0, "weight")]
    if p.bias_term:
        inputs.append(layer.blob(1, "bias"))
    return [
        layer.one(
            "ConvTranspose" if deconv else "Conv",
            inputs,
            kernel_shape=g["kernel"],
            pads=g["pad"] + g["pad"],
            strides=g["stride"],
            dilations=g["dilation"],
            group=group,
        )
    ]


mapping("Convolution", params=_conv_params(False, False), shape=_conv_shape(False), init="weight")(
    lambda layer: _emit_conv(layer, False, False)
)
# Fork types: a convolution with one group per channel (MobileNet forks), whatever ``group`` says.
mapping(
    "DepthwiseConvolution",
    "ConvolutionDepthwise",
    params=_conv_params(True, False),
    shape=_conv_shape(True),
    init="weight",
)(lambda layer: _emit_conv(layer, True, False))
# Caffe's Deconvolution keeps its weights as [inputs, outputs / group, kh, kw]: ONNX's layout.
mapping(
    "Deconvolution", params=_conv_params(False, True), shape=_conv_shape(True, True), init="weight"
)(lambda layer: _emit_conv(layer, False, True))


def _ip_params(p: Any, ins: list[Shape]) -> list[Shape]:
    axis = axis_of(p.axis, len(ins[0]))
    k = math.prod(ins[0][axis:])
    weight = [k, int(p.num_output)] if p.transpose else [int(p.num_output), k]
    return [weight, [int(p.num_output)]] if p.bias_term else [weight]


@mapping("InnerProduct", params=_ip_params, init="weight")
def _inner_product(layer: Layer) -> list[str]:
    """Every axis from ``axis`` on is flattened (the batch and the axes before it are kept)."""
    p = layer.param
    shape = layer.shapes[0]
    axis = axis_of(p.axis, len(shape))
    g = layer.graph
    x = layer.inputs[0]
    if axis == 1 and len(shape) != 2:
        x = g.one("Flatten", [x], layer.hint("flat"), axis=1)
    elif axis != 1:
        x = g.reshape(x, [0] * axis + [-1], layer.hint("flat"))
    if axis == 1:
        inputs = [x, layer.blob(0, "weight")]
        if p.bias_term:
            inputs.append(layer.blob(1, "bias"))
        return [layer.one("Gemm", inputs, transB=0 if p.transpose else 1)]
    weight = layer.blobs[0] if p.transpose else layer.blobs[0].T
    product = g.one(
        "MatMul",
        [x, g.const(weight, layer.hint("weight"))],
        layer.hint("matmul"),
        None if p.bias_term else layer.outputs[0],
    )
    if not p.bias_term:
        return [product]
    return [layer.one("Add", [product, layer.blob(1, "bias")])]


# -- pooling ----------------------------------------------------------------------------------


def _pool_geometry(p: Any, shape: Shape) -> tuple[list[int], list[int], list[int], list[int]]:
    """Kernel, pad, stride and Caffe's output size for each spatial axis."""
    if len(shape) != 4:
        raise LayerRefused(f"pooling needs a 4-D input, this one has {len(shape)} axes")
    if p.global_pooling:
        return list(shape[2:]), [0, 0], [1, 1], [1, 1]
    # Caffe asks has_kernel_size() first, has_pad_h() and has_stride_h() (not their values).
    kernel = [p.kernel_size] * 2 if p.HasField("kernel_size") else [p.kernel_h, p.kernel_w]
    pad = [p.pad_h, p.pad_w] if p.HasField("pad_h") or p.HasField("pad_w") else [p.pad] * 2
    stride = [p.stride_h, p.stride_w] if p.HasField("stride_h") else [p.stride] * 2
    floor = p.HasField("round_mode") and p.round_mode == 1 if hasattr(p, "round_mode") else False
    if hasattr(p, "ceil_mode") and p.HasField("ceil_mode"):
        floor = not p.ceil_mode  # the ceil_mode forks
    out = []
    for size, k, pad_, s in zip(shape[2:], kernel, pad, stride, strict=True):
        steps = (size + 2 * pad_ - k) / s
        n = (math.floor(steps) if floor else math.ceil(steps)) + 1
        if pad_ and (n - 1) * s >= size + pad_:
            n -= 1  # Caffe: the last window starts inside the image
        out.append(int(n))
    return [int(k) for k in kernel], [int(x) for x in pad], [int(s) for s in stride], out


def _pool_shape(p: Any, ins: list[Shape], tops: int) -> list[Shape]:
    return [[*ins[0][:2], *_pool_geometry(p, ins[0])[3]]] * tops


@mapping("Pooling", shape=_pool_shape)
def _pooling(layer: Layer) -> list[str]:
    """Caffe rounds the output size up (unless ``round_mode: FLOOR``) and drops a last window
    that would start in the padding; the extra end padding this needs is explicit here, so
    ONNX's floor rule gives Caffe's size.  Max pooling ignores padding, as Caffe does.
    Average pooling divides by the window clipped to the padded input (``H + pad``), not by
    the kernel area nor by the pixels inside the image: the exact divisor map is applied."""
    p = layer.param
    if len(layer.outputs) > 1:
        raise LayerRefused("a second top (the max positions) has no ONNX form here")
    shape = layer.shapes[0]
    kernel, pad, stride, out = _pool_geometry(p, shape)
    g = layer.graph
    method = int(p.pool)
    if method == 2:  # STOCHASTIC: TEST phase is the activation-weighted average
        raise LayerRefused("STOCHASTIC pooling has no ONNX form here")
    extra = [
        max(0, (n - 1) * s + k - (size + 2 * q))
        for n, s, k, size, q in zip(out, stride, kernel, shape[2:], pad, strict=True)
    ]
    if p.global_pooling:
        return [
            layer.one("GlobalMaxPool" if method == 0 else "GlobalAveragePool", [layer.inputs[0]])
        ]
    pads = [pad[0], pad[1], pad[0] + extra[0], pad[1] + extra[1]]
    if method == 0:
        return [
            layer.one("MaxPool", [layer.inputs[0]], kernel_shape=kernel, strides=stride, pads=pads)
        ]
    divisors = np.ones(out, dtype=np.float64)
    for axis in range(2):
        starts = np.arange(out[axis]) * stride[axis] - pad[axis]
        ends = np.minimum(starts + kernel[axis], shape[2 + axis] + pad[axis])
        size = (ends - starts).astype(np.float64)
        divisors = divisors * (size[:, None] if axis == 0 else size[None, :])
    area = kernel[0] * kernel[1]
    if not any(extra):
        return [
            layer.one(
                "AveragePool",
                [layer.inputs[0]],
                kernel_shape=kernel,
                strides=stride,
                pads=pads,
                count_include_pad=1,
            )
        ]
    pooled = g.one(
        "AveragePool",
        [layer.inputs[0]],
        layer.hint("avg"),
        kernel_shape=kernel,
        strides=stride,
        pads=pads,
        count_include_pad=1,
    )
    # ONNX divided by the kernel area (the zero padding counts): rescale to Caffe's divisor.
    factor = g.const((area / divisors).reshape(1, 1, *out), layer.hint("divisor"))
    return [layer.one("Mul", [pooled, factor])]


# -- normalisation ----------------------------------------------------------------------------


def _channels(ins: list[Shape]) -> int:
    return ins[0][1] if len(ins[0]) > 1 else 1


@mapping(
    "BatchNorm", params=lambda p, ins: [[_channels(ins)], [_channels(ins)], [1]], init="batch_norm"
)
def _batch_norm(layer: Layer) -> list[str]:
    """Caffe stores the running sums and a ``scale_factor`` blob: mean and variance are the
    stored ones divided by it (0 means zero statistics); ``eps`` is the layer's own (1e-5 by
    default, as ONNX's, but often set)."""
    p = layer.param
    if p.HasField("use_global_stats") and not p.use_global_stats:
        raise LayerRefused("use_global_stats: false normalises with the batch's own statistics")
    mean, var, factor = (b.astype(np.float64) for b in layer.blobs[:3])
    f = 0.0 if factor.ravel()[0] == 0 else 1.0 / factor.ravel()[0]
    channels = layer.shapes[0][1]
    g = layer.graph
    return [
        layer.one(
            "BatchNormalization",
            [
                layer.inputs[0],
                g.const(np.ones(channels), layer.hint("gamma")),
                g.const(np.zeros(channels), layer.hint("beta")),
                g.const(mean * f, layer.hint("mean")),
                g.const(var * f, layer.hint("var")),
            ],
            epsilon=float(p.eps),
        )
    ]


def _scale_axes(p: Any, ins: list[Shape]) -> tuple[int, int]:
    """Where Scale's (Bias's) operand starts on the input and how many axes it covers."""
    rank = len(ins[0])
    axis = axis_of(p.axis, rank)
    if len(ins) > 1:
        return axis, len(ins[1])
    count = rank - axis if p.num_axes == -1 else int(p.num_axes)
    return axis, count


def _operand_shape(p: Any, ins: list[Shape]) -> Shape:
    axis, count = _scale_axes(p, ins)
    return list(ins[0][axis : axis + count])


def _scale_params(p: Any, ins: list[Shape]) -> list[Shape]:
    shape = _operand_shape(p, ins)
    own = [] if len(ins) > 1 else [shape]
    return own + ([shape] if p.bias_term else [])


def _operand(layer: Layer, k: int, what: str) -> str:
    """Scale's multipliers (or Bias's offsets) shaped to broadcast from the layer's axis: the
    second bottom reshaped, or parameter blob ``k``."""
    p = layer.param
    axis, count = _scale_axes(p, layer.shapes)
    trailing = len(layer.shapes[0]) - axis - count
    if len(layer.inputs) > 1 and k < 0:
        if not trailing:
            return layer.inputs[1]
        return layer.graph.reshape(layer.inputs[1], [0] * count + [1] * trailing, layer.hint(what))
    return layer.blob(k, what, broadcast_shape(layer.blobs[k].shape, trailing))


@mapping("Scale", params=_scale_params, init="scale")
def _scale(layer: Layer) -> list[str]:
    """``x * scale (+ bias)``, the operand starting at ``axis`` and spanning ``num_axes``."""
    two = len(layer.inputs) > 1
    scale = _operand(layer, -1 if two else 0, "scale")
    if not layer.param.bias_term:
        return [layer.one("Mul", [layer.inputs[0], scale])]
    product = layer.graph.one("Mul", [layer.inputs[0], scale], layer.hint("mul"))
    return [layer.one("Add", [product, _operand(layer, 0 if two else 1, "bias")])]


@mapping(
    "Bias", params=lambda p, ins: [] if len(ins) > 1 else [_operand_shape(p, ins)], init="bias"
)
def _bias(layer: Layer) -> list[str]:
    return [
        layer.one(
            "Add", [layer.inputs[0], _operand(layer, -1 if len(layer.inputs) > 1 else 0, "bias")]
        )
    ]


@mapping("LRN")
def _lrn(layer: Layer) -> list[str]:
    """ACROSS_CHANNELS is ONNX's LRN (``k`` its bias).  WITHIN_CHANNEL averages the squares
    over a ``local_size`` square (zero padding counted) and uses ``1 + alpha * mean``: Caffe
    ignores ``k`` there."""
    p = layer.param
    size = int(p.local_size)
    if size % 2 == 0:
        raise LayerRefused("LRN needs an odd local_size")
    if int(p.norm_region) == 0:
        return [
            layer.one(
                "LRN",
                [layer.inputs[0]],
                size=size,
                alpha=float(p.alpha),
                beta=float(p.beta),
                bias=float(p.k),
            )
        ]
    g = layer.graph
    x = layer.inputs[0]
    pad = (size - 1) // 2
    square = g.one("Mul", [x, x], layer.hint("square"))
    mean = g.one(
        "AveragePool",
        [square],
        layer.hint("mean"),
        kernel_shape=[size, size],
        pads=[pad] * 4,
        count_include_pad=1,
    )
    scaled = g.one("Mul", [mean, g.const(p.alpha, layer.hint("alpha"))], layer.hint("scaled"))
    base = g.one("Add", [scaled, g.const(1.0, layer.hint("one"))], layer.hint("base"))
    power = g.one("Pow", [base, g.const(-p.beta, layer.hint("beta"))], layer.hint("power"))
    return [layer.one("Mul", [x, power])]


@mapping("MVN")
def _mvn(layer: Layer) -> list[str]:
    """Mean (and, with ``normalize_variance``, deviation) over each channel's pixels, or over
    the whole sample with ``across_channels``; Caffe adds ``eps`` to the deviation."""
    p = layer.param
    rank = len(layer.shapes[0])
    axes = list(range(1 if p.across_channels else 2, rank))
    g = layer.graph
    x = layer.inputs[0]
    mean = g.reduce("ReduceMean", x, axes, layer.hint("mean"))
    if not p.normalize_variance:
        return [layer.one("Sub", [x, mean])]
    centred = g.one("Sub", [x, mean], layer.hint("centred"))
    square = g.one("Mul", [centred, centred], layer.hint("square"))
    var = g.reduce("ReduceMean", square, axes, layer.hint("var"))
    std = g.one("Sqrt", [var], layer.hint("std"))
    denom = g.one("Add", [std, g.const(p.eps, layer.hint("eps"))], layer.hint("denom"))
    return [layer.one("Div", [centred, denom])]
