"""``fully-conv``: InnerProduct layers after the last spatial layer become Convolutions, with
their weights reshaped (Caffe's net surgery example), so the net runs on larger images and
gives a map of outputs, one per window of the original input size.

An InnerProduct on a ``C x H x W`` value computes what a Convolution with ``H x W`` kernels
computes at one place; its ``(out, C*H*W)`` weight is the convolution's ``(out, C, H, W)``
in the same order.  An InnerProduct after a converted one (through layers that keep the
shape, such as ReLU, Dropout or Softmax) becomes a 1x1 Convolution.  Layer and blob names
stay, so the weights keep their names too.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import text_format

from protoedit.document import Document
from protoedit.errors import InputError
from protoedit.net.layers import SAME_SHAPE, layer_type, param_blobs
from protoedit.net.shapes import infer_shapes
from protoedit.net.view import BlobVersion, LayerInfo, NetView
from protoedit.rewrites.carried import (
    WeightsReport,
    arrays_of,
    layer_blobs,
    weights_like,
)
from protoedit.rewrites.check import check_result, lint_errors

__all__ = ["fully_conv"]

_FILLERS = ("weight_filler", "bias_filler")


def _is_inner_product(info: LayerInfo) -> bool:
    entry = layer_type(info.type)
    return entry is not None and entry.shape == "inner_product"


def _keeps_shape(info: LayerInfo) -> bool:
    entry = layer_type(info.type)
    return entry is not None and entry.has(SAME_SHAPE) and len(info.reads) == 1


def _conv_text(param: Any, kernel: tuple[int, int]) -> str:
    """The ``convolution_param`` that computes what ``param`` (an InnerProduct's) does."""
    ip = param.inner_product_param
    h, w = kernel
    lines = [f"num_output: {ip.num_output}"]
    if not ip.bias_term:
        lines.append("bias_term: false")
    lines.append(f"kernel_size: {h}" if h == w else f"kernel_h: {h}\n  kernel_w: {w}")
    for name in _FILLERS:
        if ip.HasField(name):
            body = text_format.MessageToString(getattr(ip, name), as_one_line=True)
            lines.append(f"{name} {{ {body} }}")
    return "convolution_param {\n  " + "\n  ".join(lines) + "\n}"


def fully_conv(doc: Document, weights: Any = None) -> WeightsReport:
    """Turn the InnerProduct layers on spatial values (and those after them) into
    Convolutions; ``weights`` (a ``Weights``, ``{layer: [arrays]}`` or None) reshaped to
    match.  InnerProducts on values of unknown shape, or on flat values from anything else,
    stay and are flagged."""
    view = NetView.editable(doc)
    baseline = lint_errors(doc)
    shapes = infer_shapes(view)
    report = WeightsReport(changed=list(view.normalised))
    converted: set[BlobVersion] = set()  # values that are now N x C x 1 x 1 maps
    plans: list[tuple[LayerInfo, tuple[int, int]]] = []
    for info in view.layers:
        if _is_inner_product(info):
            ip = info.param.inner_product_param
            shape = shapes[info.reads[0]] if len(info.reads) == 1 else None
            if ip.axis not in (1, -3 if shape and len(shape) == 4 else 1):
                report.flagged.append(f"InnerProduct '{info.name}' stays: it has axis {ip.axis}")
            elif info.reads[0] in converted:
                plans.append((info, (1, 1)))
                converted.update(info.writes)
            elif shape is not None and len(shape) == 4:
                plans.append((info, (shape[2], shape[3])))
                converted.update(info.writes)
            else:
                what = f"of shape {shape}" if shape else "of unknown shape"
                report.flagged.append(
                    f"InnerProduct '{info.name}' stays: its input '{info.reads[0].blob}' is "
                    f"{what}, not a spatial map"
                )
        elif any(r in converted for r in info.reads):
            if _keeps_shape(info):
                converted.update(info.writes)
            else:
                report.flagged.append(
                    f"layer '{info.name}' ({info.type}) reads a value that is now a map of "
                    "outputs: check that it still means what it did"
                )
    if not plans:
        raise InputError("no InnerProduct layer reads a spatial map: nothing to convert")
    for info, kernel in plans:
        doc.set(f"layer[{info.index}].type", "Convolution")
        doc.delete(f"layer[{info.index}].inner_product_param")
        doc.insert(f"layer[{info.index}]", _conv_text(info.param, kernel))
        size = f"{kernel[0]}x{kernel[1]}"
        report.changed.append(f"InnerProduct '{info.name}' -> Convolution with {size} kernels")
    check_result(doc, "fully-conv", baseline=baseline)
    if weights is None:
        return report
    arrays = arrays_of(weights)
    new = dict(arrays)
    for info, (h, w) in plans:
        ip = info.param.inner_product_param
        roles = param_blobs(info.param) or ("weight",)
        blobs = layer_blobs(arrays, info.name, info.type, len(roles))
        out = int(ip.num_output)
        weight = blobs[0].reshape(-1, out).T if ip.transpose else blobs[0].reshape(out, -1)
        if weight.shape[1] % (h * w):
            raise InputError(
                f"'{info.name}/weight' has {weight.shape[1]} inputs per output, not a "
                f"multiple of its {h}x{w} window"
            )
        new[info.name] = [weight.reshape(out, -1, h, w).copy(), *blobs[1:]]
    report.weights = weights_like(weights, new, {info.name: "Convolution" for info, _ in plans})
    changed = {info.name for info, _ in plans}
    report.carried = {name: name for name in arrays if name not in changed}
    return report
