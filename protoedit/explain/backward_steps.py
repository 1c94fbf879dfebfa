"""A backward pass stepped layer by layer inside the Caffe worker, on stock pycaffe
(``Net._backward(i, i)``): the gradients of named blobs, before and after their in-place
layers, and the ReLU rules of guided backpropagation and the deconvnet.

Rules for a ReLU's backward, with ``g`` the gradient arriving at its top:

- ``plain``: Caffe's own, ``g * [x > 0]``;
- ``guided`` (Springenberg et al. 2015): ``max(g, 0) * [x > 0]``;
- ``deconvnet`` (Zeiler and Fergus 2014): ``max(g, 0)``, whatever the forward pass did.

A blob written in place (``conv1`` by ReLU ``relu1``) holds two values in one buffer; its
gradient is taken twice: ``NAME/after`` as it reaches the last in-place layer (the gradient
of the value after them) and ``NAME/before`` once the first has run (of the value before).
Caffe's own Split blobs are its business and are never reported.
"""

from __future__ import annotations

from typing import Any

RULES = ("plain", "guided", "deconvnet")


def inplace_writers(net: Any) -> dict[str, list[int]]:
    """Each blob some layer writes in place: the indices of those layers, in order."""
    out: dict[str, list[int]] = {}
    for index, name in enumerate(net._layer_names):
        bottoms = set(net.bottom_names.get(name, []))
        for top in net.top_names.get(name, []):
            if top in bottoms:
                out.setdefault(top, []).append(index)
    return out


def user_blobs(net: Any) -> list[str]:
    """The net's blobs without those of the Split layers Caffe inserts."""
    split_tops = {
        top
        for name, layer in zip(net._layer_names, net.layers, strict=True)
        if layer.type == "Split" and name.endswith("_split")
        for top in net.top_names.get(name, [])
    }
    return [name for name in net.blobs if name not in split_tops]


def _relu(net: Any, index: int, rule: str) -> None:
    """One ReLU's backward by ``rule`` (guided or deconvnet)."""
    import numpy as np

    name = net._layer_names[index]
    top = net.blobs[net.top_names[name][0]]
    bottom = net.blobs[net.bottom_names[name][0]]
    positive = np.maximum(top.diff, 0)
    if rule == "guided":
        top.diff[...] = positive
        net._backward(index, index)
    else:
        bottom.diff[...] = positive


def stepped_backward(net: Any, names: list[str], rule: str) -> dict[str, Any]:
    """Run the backward pass (after a forward) layer by layer with ``rule`` at each ReLU;
    the gradients of ``names`` (``NAME`` or, for a blob written in place, ``NAME/before``
    and ``NAME/after``)."""
    writers = inplace_writers(net)
    after_at: dict[int, list[str]] = {}
    for name in names:
        if name in writers:
            after_at.setdefault(writers[name][-1], []).append(name)
    after: dict[str, Any] = {}
    for index in reversed(range(len(net.layers))):
        for name in after_at.get(index, []):
            after[name] = net.blobs[name].diff.copy()
        if rule != "plain" and net.layers[index].type == "ReLU":
            _relu(net, index, rule)
        else:
            net._backward(index, index)
    out: dict[str, Any] = {}
    for name in names:
        if name in writers:
            out[name + "/before"] = net.blobs[name].diff.copy()
            out[name + "/after"] = after[name]
        else:
            out[name] = net.blobs[name].diff.copy()
    return out
