"""Run by the tests in a child process: pycaffe's own backward of an unmodified net.

    python tests/explain_backward_in_caffe.py NET WEIGHTS INPUTS.npz OUT.npz

Loads NET with WEIGHTS in phase TEST, feeds every input blob from INPUTS.npz, runs
``net.forward()`` and ``net.backward()``, and saves ``net.layers[i].blobs[k].diff`` under
``LAYER/K`` (the layer's name from ``net._layer_names``), plus ``loss`` (the sum of the
weighted loss tops).  No protoedit code runs here: it is the independent reference.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("GLOG_minloglevel", "2")

import caffe
import numpy as np


def main(net_path: str, weights: str, inputs_path: str, out_path: str) -> int:
    caffe.set_mode_cpu()
    net = caffe.Net(net_path, caffe.TEST, weights=weights)
    inputs = np.load(inputs_path)
    for name in net.inputs:
        net.blobs[name].reshape(*inputs[name].shape)
    net.reshape()
    for name in net.inputs:
        net.blobs[name].data[...] = inputs[name]
    net.forward()
    net.backward()
    diffs = {
        f"{name}/{k}": blob.diff.copy()
        for name, layer in zip(net._layer_names, net.layers, strict=True)
        for k, blob in enumerate(layer.blobs)
    }
    loss = sum(
        w * float(np.sum(net.blobs[b].data, dtype=np.float64))
        for b, w in net.blob_loss_weights.items()
        if w
    )
    np.savez(out_path, loss=np.float64(loss), **diffs)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
