"""Handlers the summary tests run in the warm Caffe worker (``caffe_session``): what Caffe
makes of a net (its blobs' and parameters' shapes), and the support of an input gradient."""

from __future__ import annotations

from typing import Any

import caffe
import numpy as np

from protoedit.caffe.child import Handler, Note


def _blobs(request: dict[str, Any], note: Note) -> dict[str, Any]:
    """Load ``net`` in phase TEST: every blob's shape, every layer's parameter shapes."""
    net = caffe.Net(request["net"], caffe.TEST)
    return {
        "blobs": {name: list(blob.data.shape) for name, blob in net.blobs.items()},
        "params": {name: [list(b.data.shape) for b in blobs] for name, blobs in net.params.items()},
    }


def _support(request: dict[str, Any], note: Note) -> dict[str, Any]:
    """The input gradient of single units of ``target`` (the net's one output): for each unit
    (channel 0, y, x) the box of input pixels with a non-zero gradient and their count.

    ``positive``: every weight drawn from [0.5, 1), biases 0, the input from [0.5, 1): the
    gradient is then positive exactly where the unit depends on the input.  Otherwise weights
    and input are standard normal (a ReLU or a max pooling may cut the support)."""
    net = caffe.Net(request["net"], caffe.TEST)
    rng = np.random.default_rng(request.get("seed", 0))
    positive = bool(request["positive"])
    for blobs in net.params.values():
        for k, blob in enumerate(blobs):
            if k == 1:
                blob.data[...] = 0
            elif positive:
                blob.data[...] = rng.uniform(0.5, 1.0, blob.data.shape)
            else:
                blob.data[...] = rng.standard_normal(blob.data.shape)
    data = net.inputs[0]
    shape = net.blobs[data].data.shape
    x = rng.uniform(0.5, 1.0, shape) if positive else rng.standard_normal(shape)
    net.blobs[data].data[...] = x
    target = request["target"]
    net.forward()
    found = []
    for y, x_ in request["units"]:
        diff = np.zeros_like(net.blobs[target].diff)
        diff[0, 0, y, x_] = 1.0
        grad = net.backward(**{target: diff})[data][0]
        nonzero = np.abs(grad).sum(axis=0) != 0
        rows, cols = np.nonzero(nonzero)
        box = (
            [int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1]
            if rows.size
            else None
        )
        found.append({"box": box, "count": int(nonzero.sum())})
    return {"units": found, "shape": list(net.blobs[target].data.shape)}


HANDLERS: dict[str, Handler] = {"blobs": _blobs, "support": _support}
