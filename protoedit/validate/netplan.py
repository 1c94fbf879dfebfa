"""Child-side plans on a parsed ``caffe.NetParameter``: the batch to run at, and a backward
that skips parameter gradients.

Both work on pycaffe's generated message (passed in, never imported here), so they run in the
Caffe child.  Neither changes what the validation decides: the batch is kept where a layer
makes it matter, and the parameter gradients are skipped only in nets made of layers whose
input gradients Caffe computes the same way with or without them.
"""

from __future__ import annotations

from typing import Any

from protoedit.net.inputs import legacy_input_shapes
from protoedit.net.layers import GATE_SAFE, is_a, learnt_param_count
from protoedit.net.state import NetState, layer_included

#: Prefix of the layers :func:`gate_backward` adds (names no trained model uses).
GATE_PREFIX = "protoedit_backward_gate_"


def built_state(param: Any, phase: str) -> NetState:
    """The ``NetState`` pycaffe's ``caffe.Net(file, phase)`` builds ``param`` for: the phase
    given, level 0 (Caffe sets the level it is passed) and the stages of the net's own
    ``state`` (it appends the ones passed, none here)."""
    return NetState(phase, 0, frozenset(param.state.stage))


def batch_matters(param: Any, phase: str) -> str:
    """Why the net must run at its declared batch ("" when any batch gives the same verdict).

    A Reshape whose first dimension is a fixed number, a Slice or Concat along the batch axis,
    and BatchNorm computing batch statistics (TRAIN without ``use_global_stats``) all change
    what the net computes, or whether it loads, when the batch changes.  Only the layers Caffe
    builds in ``phase`` (``TRAIN`` or ``TEST``) count: its ``FilterNet`` rules decide.
    """
    state = built_state(param, phase)
    for layer in param.layer:
        if not layer_included(layer, state):
            continue
        if layer.type == "Reshape":
            reshape = layer.reshape_param
            dims = list(reshape.shape.dim)
            if reshape.axis == 0 and dims and dims[0] > 0:
                return f"Reshape layer {layer.name!r} fixes the first dimension to {dims[0]}"
        if layer.type == "Slice":
            axis = (
                layer.slice_param.slice_dim
                if layer.slice_param.HasField("slice_dim")
                else (layer.slice_param.axis)
            )
            if axis == 0:
                return f"Slice layer {layer.name!r} slices along the batch axis"
        if layer.type == "Concat":
            axis = (
                layer.concat_param.concat_dim
                if layer.concat_param.HasField("concat_dim")
                else (layer.concat_param.axis)
            )
            if axis == 0:
                return f"Concat layer {layer.name!r} concatenates along the batch axis"
        if layer.type == "BatchNorm" and phase == "TRAIN":
            stats = layer.batch_norm_param
            if not (stats.HasField("use_global_stats") and stats.use_global_stats):
                return f"BatchNorm layer {layer.name!r} uses the batch's statistics in TRAIN"
    return ""


def _upgrade_input_fields(param: Any) -> None:
    """Turn the legacy ``input:`` header into an Input layer, first, as Caffe's loader does
    (``UpgradeNetInput``: a header without shapes is only dropped)."""
    if not param.input:
        return
    shapes = legacy_input_shapes(param)
    if shapes:
        layer = param.layer.add()
        layer.name, layer.type = "input", "Input"
        layer.top.extend(param.input)
        for dims in shapes:
            layer.input_param.shape.add().dim.extend(dims)
        # Caffe puts the Input layer before every other layer: move the new one to the front.
        layers = list(param.layer)
        del param.layer[:]
        param.layer.extend([layers[-1], *layers[:-1]])
    del param.input[:], param.input_shape[:], param.input_dim[:]


def gate_backward(param: Any) -> str:
    """Rewrite a ``force_backward`` net so backward fills the input gradients and skips the
    parameter gradients; "" when done, else why it is not (the net is then left alone).

    ``force_backward`` makes every layer compute its parameter gradients, and neither
    ``propagate_down`` nor ``lr_mult: 0`` stops it.  Without it, a layer computes a parameter
    gradient only when the parameter's ``lr_mult`` is non-zero, and backpropagates to its
    bottoms when they lead back to such a parameter.  So: drop ``force_backward``, set
    ``lr_mult: 0`` on every parameter, and give each input blob an in-place scalar Bias (one
    learnable number, initialised to 0, so forward is unchanged): every blob computed from an
    input then needs backward, and no other parameter gradient is computed.
    """
    if not param.force_backward:
        return "the net does not set force_backward"
    if len(param.layers):
        return "a V1 net (layers { ... }): Caffe upgrades it when loading"
    unsafe = sorted({layer.type for layer in param.layer if not is_a(layer.type, GATE_SAFE)})
    if unsafe:
        return f"layer types whose backward is not known to be unaffected: {', '.join(unsafe)}"
    for layer in param.layer:
        if any(p.name for p in layer.param):
            return f"layer {layer.name!r} shares parameters by name"
        if not all(layer.propagate_down):  # force_backward overrides it; without, it holds
            return f"layer {layer.name!r} sets propagate_down: false"
    _upgrade_input_fields(param)
    for layer in param.layer:
        count = learnt_param_count(layer)
        if count is None:
            continue
        while len(layer.param) < count:
            layer.param.add()
        for spec in layer.param[:count]:
            spec.lr_mult = 0.0
    layers = list(param.layer)
    del param.layer[:]
    for layer in layers:
        param.layer.append(layer)
        if layer.type != "Input":
            continue
        for top in layer.top:
            gate = param.layer.add()
            gate.name, gate.type = GATE_PREFIX + top, "Bias"
            gate.bottom.append(top)
            gate.top.append(top)
            gate.bias_param.axis = 0
            gate.bias_param.num_axes = 0
    param.force_backward = False
    return ""
