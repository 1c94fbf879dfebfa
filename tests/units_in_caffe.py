"""A handler the units tests run in a Caffe child: pycaffe's own ``net.backward(diffs=...)``
on an unmodified net, the reference for ``grad --blobs``.

``backward``: load ``net`` in ``phase`` with ``weights``, feed ``inputs``, forward, then
``net.backward(diffs=names)``; for a blob written in place, also the diff as the backward
pass leaves the layer after its last in-place writer (``net.backward(end=...)``), keyed
``NAME/after``.  No protoedit code runs on the Caffe side.
"""

from __future__ import annotations

from typing import Any

from protoedit.caffe.child import Handler, Note


def _backward(request: dict[str, Any], note: Note) -> dict[str, Any]:
    import caffe

    caffe.set_mode_cpu()
    phase = caffe.TRAIN if request["phase"] == "TRAIN" else caffe.TEST
    net = caffe.Net(request["net"], phase, weights=request["weights"])
    for name, array in request["inputs"].items():
        net.blobs[name].reshape(*array.shape)
    net.reshape()
    for name, array in request["inputs"].items():
        net.blobs[name].data[...] = array
    net.forward()
    names: list[str] = request["names"]
    diffs = net.backward(diffs=names)
    out = {name: diffs[name].copy() for name in names}
    layers = list(net._layer_names)
    for name in names:
        writers = [
            i
            for i, layer in enumerate(layers)
            if name in net.bottom_names[layer] and name in net.top_names[layer]
        ]
        if writers:
            net.forward()
            after = net.backward(end=layers[writers[-1] + 1], diffs=[name])
            out[name + "/after"] = after[name].copy()
    return {"diffs": out}


HANDLERS: dict[str, Handler] = {"backward": _backward}
