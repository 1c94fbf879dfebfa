"""The Caffe side of :mod:`protoedit.validate.equivalence`: the ``compare`` handler.

It loads the original net and the rewritten one with their weights (a ``.caffemodel``
copied by layer name, as Caffe does, or arrays set by layer name), compares the blobs of
the layers both name bitwise, runs both on the inputs given, and measures for each pair of
blobs the largest difference, the original's largest magnitude, and the noise of float32
rounding: how far the original's blob moves when every parameter of the original moves by
one unit in the last place (a random direction each, seeded) and the net runs again.
"""

from __future__ import annotations

from typing import Any

from protoedit.caffe.child import Handler, Note, Refused


def _load(caffe: Any, net_file: str, weights: Any, stored: list[str]) -> tuple[Any, list[str]]:
    """The net in TEST phase with its weights (a file holding the layers ``stored``, or
    arrays by layer name); the layers with blobs the weights lack."""
    net = caffe.Net(net_file, caffe.TEST)
    names = list(net._layer_names)
    if isinstance(weights, str):
        net.copy_from(weights)
        have = set(stored)
        return net, [
            n
            for n, layer in zip(names, net.layers, strict=True)
            if len(layer.blobs) and n not in have
        ]
    missing = []
    for name, layer in zip(names, net.layers, strict=True):
        if not len(layer.blobs):
            continue
        arrays = weights.get(name)
        if arrays is None:
            missing.append(name)
            continue
        if len(arrays) != len(layer.blobs):
            raise Refused(
                f"layer '{name}' has {len(layer.blobs)} blobs in the net, {len(arrays)} given",
                "weights",
            )
        for blob, array in zip(layer.blobs, arrays, strict=True):
            if array.size != blob.data.size:
                raise Refused(
                    f"layer '{name}' has a blob of shape {tuple(blob.data.shape)} in the net, "
                    f"{tuple(array.shape)} given",
                    "weights",
                )
            blob.data[...] = array.reshape(blob.data.shape)
    return net, missing


def _params(net: Any) -> dict[str, list[Any]]:
    return {
        name: [b.data for b in layer.blobs]
        for name, layer in zip(net._layer_names, net.layers, strict=True)
        if len(layer.blobs)
    }


def _run(net: Any, inputs: dict[str, Any]) -> None:
    for name, array in inputs.items():
        if name not in net.inputs:
            raise Refused(f"the net has no input blob '{name}'")
        net.blobs[name].reshape(*array.shape)
    net.reshape()
    for name, array in inputs.items():
        net.blobs[name].data[...] = array
    net.forward()


def _perturb(net: Any, seed: int) -> None:
    """Move every parameter of ``net`` by one unit in the last place, up or down at random
    (a zero stays zero: it is exact, and BatchNorm reads a zero scale_factor as a switch)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for layer in net.layers:
        for blob in layer.blobs:
            up = rng.random(blob.data.shape) < 0.5
            toward = np.where(up, np.float32(np.inf), np.float32(-np.inf))
            moved = np.nextafter(blob.data, toward)
            blob.data[...] = np.where(blob.data == 0, blob.data, moved)  # zero stays exact


def _compare(request: dict[str, Any], note: Note) -> dict[str, Any]:
    import caffe
    import numpy as np

    caffe.set_mode_cpu()
    note("stage", "load")
    original, missing_a = _load(
        caffe, request["original"], request["original_weights"], request["original_stored"]
    )
    rewritten, missing_b = _load(caffe, request["net"], request["weights"], request["stored"])
    old, new = _params(original), _params(rewritten)
    params = []
    for new_name, old_name in request["carried"]:
        if new_name not in new or old_name not in old:
            continue
        a, b = old[old_name], new[new_name]
        same = len(a) == len(b) and all(
            x.shape == y.shape and x.tobytes() == y.tobytes() for x, y in zip(a, b, strict=True)
        )
        params.append([new_name, old_name, same])
    renamed: dict[str, str] = request["renamed_blobs"]
    pairs = [
        (name, renamed.get(name, name))
        for name in rewritten.blobs
        if name not in rewritten.inputs and renamed.get(name, name) in original.blobs
    ]
    note("stage", "forward")
    _run(rewritten, request["inputs"])
    kept = {new_name: rewritten.blobs[new_name].data.copy() for new_name, _ in pairs}
    _run(original, request["original_inputs"])
    reference = {old_name: original.blobs[old_name].data.copy() for _, old_name in pairs}
    _perturb(original, int(request.get("seed", 0)))
    _run(original, request["original_inputs"])
    rows = []
    for new_name, old_name in pairs:
        a, b = reference[old_name], kept[new_name]
        moved = original.blobs[old_name].data
        row: dict[str, Any] = {
            "blob": new_name,
            "original": old_name,
            "shape": list(b.shape),
            "original_shape": list(a.shape),
        }
        if a.size == b.size:
            a64, b64 = a.astype(np.float64).reshape(-1), b.astype(np.float64).reshape(-1)
            diff = np.abs(a64 - b64)
            worst = int(np.argmax(diff)) if diff.size else 0
            finite = bool(np.all(np.isfinite(a64)) and np.all(np.isfinite(b64)))
            row.update(
                difference=float(diff[worst]) if diff.size else 0.0,
                at=worst,
                magnitude=float(np.max(np.abs(a64))) if a64.size else 0.0,
                noise=float(np.max(np.abs(moved.astype(np.float64).reshape(-1) - a64)))
                if a64.size
                else 0.0,
                finite=finite,
            )
        rows.append(row)
    return {"blobs": rows, "params": params, "missing": missing_b, "missing_original": missing_a}


def _forward_times(request: dict[str, Any], note: Note) -> dict[str, Any]:
    """Seconds of each of ``repeat`` forward passes of each net in ``nets`` (``[net file,
    weights]`` pairs) on ``inputs``, taken in turn so that both see the same machine."""
    import time

    import caffe

    caffe.set_mode_cpu()
    loaded = [
        _load(caffe, net_file, weights, stored)[0] for net_file, weights, stored in request["nets"]
    ]
    for net in loaded:  # the first pass allocates: not timed
        _run(net, request["inputs"])
    times: list[list[float]] = [[] for _ in loaded]
    for _ in range(int(request["repeat"])):
        for k, net in enumerate(loaded):
            started = time.perf_counter()
            net.forward()
            times[k].append(time.perf_counter() - started)
    return {"seconds": times}


HANDLERS: dict[str, Handler] = {"compare": _compare, "forward_times": _forward_times}
