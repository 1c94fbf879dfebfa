"""``input-channels``: the net's image input given another number of channels, with the
weights of the first convolution adapted, and BGR/RGB swapping.

- to 1 channel (RGB to grey): the convolution's weights are summed over the input
  channels, so a grey image gives what the same grey in every channel gave before;
- to more channels: the extra channels get zero weights, so the first channels give what
  they gave before, whatever the extra ones hold;
- ``swap``: the first and third channels' weights trade places (BGR <-> RGB), so the
  swapped image gives what the original image gave.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from protoedit.document import Document
from protoedit.errors import InputError, InvalidArgumentError
from protoedit.net.inputs import header_shapes
from protoedit.net.layers import layer_type, param_blobs
from protoedit.net.view import INPUT, LayerInfo, NetView
from protoedit.rewrites.carried import (
    WeightsReport,
    arrays_of,
    layer_blobs,
    weights_like,
)
from protoedit.rewrites.check import check_result, lint_errors

if TYPE_CHECKING:
    from protoedit.rewrites.carried import Inputs

__all__ = ["input_channels"]


def _first_conv(view: NetView) -> tuple[str, LayerInfo | None, LayerInfo]:
    """The image input (its name, its Input layer or None for a header) and the one
    Convolution that reads it."""
    header = list(view.doc.message.input)
    inputs = [(info.writes[0].blob, info) for info in view.layers if _is_input(info)]
    candidates = [(name, None) for name in header] + inputs
    for name, layer in candidates:
        readers = [
            i for i in view.layers if any(r.blob == name and _from(r, layer) for r in i.reads)
        ]
        convs = [i for i in readers if _shape_rule(i) == "conv"]
        if not convs:
            continue
        if len(readers) > 1:
            others = ", ".join(f"'{i.name}'" for i in readers if i is not convs[0])
            raise InputError(
                f"input '{name}' is also read by {others}: only the first convolution's "
                "weights can follow a change of its channels"
            )
        return name, layer, convs[0]
    raise InputError("no Convolution reads an input of the net directly")


def _shape_rule(info: LayerInfo) -> str | None:
    entry = layer_type(info.type)
    return entry.shape if entry is not None else None


def _is_input(info: LayerInfo) -> bool:
    return _shape_rule(info) == "input" and len(info.writes) == 1


def _from(version: Any, layer: LayerInfo | None) -> bool:
    return bool(version.producer == (INPUT if layer is None else layer.index))


def input_channels(
    doc: Document, channels: int | None = None, weights: Any = None, *, swap: bool = False
) -> WeightsReport:
    """Give the image input ``channels`` channels (None: as it is) and, with ``swap``,
    swap its first and third channels; the first convolution's weights follow.  The report's
    ``original_inputs`` turns inputs of the new net into inputs of the old that give the
    same values."""
    view = NetView.editable(doc)
    baseline = lint_errors(doc)
    name, layer, conv = _first_conv(view)
    if layer is not None:
        dims_path = f"layer[{layer.index}].input_param.shape[0].dim"
        dims = list(layer.param.input_param.shape[0].dim)
    else:
        dims = list(header_shapes(doc.message).get(name, []))
        dims_path = ""
    if len(dims) != 4:
        raise InputError(f"input '{name}' is not declared with 4 dimensions (N, C, H, W)")
    old = int(dims[1])
    new = old if channels is None else int(channels)
    if new < 1 or (new < old and new != 1):
        raise InvalidArgumentError(
            f"{new} channels for an input of {old}: only 1 (grey) or more channels keep "
            "what the net computes",
            "input_channels",
        )
    if swap and old < 3:
        raise InvalidArgumentError(f"input '{name}' has {old} channels: nothing to swap", "swap")
    if int(conv.param.convolution_param.group or 1) != 1:
        raise InputError(f"'{conv.name}' is a grouped convolution: its input channels are tied")
    report = WeightsReport(changed=list(view.normalised))
    if new != old:
        _set_channels(doc, dims_path, name, new)
        report.changed.append(f"input '{name}': {old} -> {new} channels")
    if swap:
        report.changed.append(f"input '{name}': channels 0 and 2 swapped (BGR <-> RGB)")
    check_result(doc, "input-channels", baseline=baseline)
    report.original_inputs = _original_inputs(name, old, new, swap)
    if weights is None:
        return report
    import numpy as np

    arrays = arrays_of(weights)
    roles = param_blobs(conv.param) or ("weight",)
    blobs = layer_blobs(arrays, conv.name, conv.type, len(roles))
    w = blobs[0].astype(np.float32)
    if w.ndim != 4 or w.shape[1] != old:
        raise InputError(f"'{conv.name}/weight' has shape {w.shape}, not (out, {old}, kh, kw)")
    if swap:
        w = w[:, [2, 1, 0, *range(3, old)]]
    if new == 1 and old != 1:
        w = w.sum(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)
    elif new > old:
        w = np.concatenate([w, np.zeros((w.shape[0], new - old, *w.shape[2:]), w.dtype)], 1)
    report.weights = weights_like(weights, {**arrays, conv.name: [w, *blobs[1:]]}, {})
    report.carried = {n: n for n in arrays if n != conv.name}
    return report


def _set_channels(doc: Document, dims_path: str, name: str, channels: int) -> None:
    if dims_path:
        doc.set(f"{dims_path}[1]", channels)
        return
    message = doc.message
    if len(message.input_shape):
        index = list(message.input).index(name)
        doc.set(f"input_shape[{index}].dim[1]", channels)
    else:
        index = list(message.input).index(name)
        doc.set(f"input_dim[{4 * index + 1}]", channels)


def _original_inputs(name: str, old: int, new: int, swap: bool) -> Any:
    """New inputs -> the old net's inputs that give the same values."""

    def convert(inputs: Inputs) -> Inputs:
        import numpy as np

        x = inputs[name]
        if new == 1 and old != 1:
            x = np.repeat(x, old, axis=1)
        elif new > old:
            x = x[:, :old]
        if swap:
            x = x[:, [2, 1, 0, *range(3, old)]]
        return {**inputs, name: np.ascontiguousarray(x)}

    return convert
