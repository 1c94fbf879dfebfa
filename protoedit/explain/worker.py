"""The Caffe side of a :class:`~protoedit.explain.session.CaffeSession`: handlers run in a
worker of :mod:`protoedit.caffe`, which may hold several nets, each under the id ``load``
returned.

Requests: ``load`` (net file, weights, stored blob shapes), ``run`` (inputs; forward,
optionally backward; loss, parameter and input gradients, chosen blobs), ``get_params`` /
``set_params`` (by layer and role), ``ascend`` (gradient-ascent steps on the input,
:mod:`protoedit.explain.ascent`), ``unload``.  Every request but ``load`` names its
``net_id``.
"""

from __future__ import annotations

import itertools
from typing import Any

from protoedit.caffe.child import Handler, Note, Refused
from protoedit.net.layers import param_roles
from protoedit.weights.fit import misfits


class LoadedNet:
    """One net held between requests."""

    def __init__(self) -> None:
        import caffe

        self.caffe = caffe
        self.net: Any = None
        self.layers: dict[str, Any] = {}  # layer name -> layer, for layers with parameters
        self.roles: dict[str, list[str]] = {}

    def load(self, request: dict[str, Any]) -> dict[str, Any]:
        """Build the net (no weights yet), check the stored shapes fit, then copy the weights."""
        caffe = self.caffe
        caffe.set_mode_cpu()
        caffe.set_random_seed(int(request.get("seed", 0)))
        net = caffe.Net(request["net"], caffe.TEST)
        names = list(net._layer_names)
        self.layers, self.roles, expected = {}, {}, {}
        for name, layer in zip(names, net.layers, strict=True):
            if len(layer.blobs):
                bottoms = len(net.bottom_names.get(name, []))
                self.layers[name] = layer
                self.roles[name] = param_roles(layer.type, len(layer.blobs), bottoms)
                expected[name] = [tuple(b.data.shape) for b in layer.blobs]
        weights = request.get("weights")
        missing: list[str] = []
        if weights is not None:
            stored = request["stored_shapes"]
            problems = misfits(expected, stored, self.roles)
            if problems:
                raise Refused("; ".join(problems), "weights")
            missing = [name for name in expected if name not in stored]
            net.copy_from(weights)
        self.net = net
        return {
            "inputs": {name: list(net.blobs[name].data.shape) for name in net.inputs},
            "params": {
                name: {
                    role: list(shape)
                    for role, shape in zip(self.roles[name], expected[name], strict=True)
                }
                for name in expected
            },
            "missing": missing,
            "loss_blobs": [n for n, w in net.blob_loss_weights.items() if w != 0.0],
        }

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        """Forward (and backward) on the given inputs; report what was asked for."""
        import numpy as np

        net = self.net
        given: dict[str, Any] = request["inputs"]
        unknown = sorted(set(given) - set(net.inputs))
        if unknown:
            raise Refused(f"no input blob named {', '.join(map(repr, unknown))}")
        reshaped = False
        for name, array in given.items():
            blob = net.blobs[name]
            if tuple(array.shape) != tuple(blob.data.shape):
                blob.reshape(*array.shape)
                reshaped = True
        if reshaped:
            net.reshape()
        for name, array in given.items():
            net.blobs[name].data[...] = array
        net.forward()
        weights = net.blob_loss_weights
        losses = {
            name: float(w * np.sum(net.blobs[name].data, dtype=np.float64))
            for name, w in weights.items()
            if w != 0.0
        }
        result: dict[str, Any] = {"losses": losses, "loss": float(sum(losses.values()))}
        if request.get("backward", True):
            param_grads = request.get("param_grads", True)
            if param_grads:
                for layer in net.layers:  # Caffe accumulates parameter diffs: start from zero
                    for blob in layer.blobs:
                        blob.diff[...] = 0
            net.backward()
            result["inputs"] = {name: net.blobs[name].diff.copy() for name in net.inputs}
        if request.get("backward", True) and request.get("param_grads", True):
            result["params"] = {
                name: {
                    role: blob.diff.copy()
                    for role, blob in zip(self.roles[name], layer.blobs, strict=True)
                }
                for name, layer in self.layers.items()
            }
        if request.get("param_norms"):
            result["param_norms"] = {
                name: {
                    role: float(np.linalg.norm(blob.data.astype(np.float64)))
                    for role, blob in zip(self.roles[name], layer.blobs, strict=True)
                }
                for name, layer in self.layers.items()
            }
        blobs: list[str] = request.get("blobs", [])
        absent = [b for b in blobs if b not in net.blobs]
        if absent:
            raise Refused(f"no blob named {', '.join(map(repr, absent))}")
        result["blobs"] = {name: net.blobs[name].data.copy() for name in blobs}
        return result

    def _param(self, layer: str, role: str) -> Any:
        if layer not in self.layers or role not in self.roles[layer]:
            raise Refused(f"no parameter '{layer}/{role}' in the net")
        return self.layers[layer].blobs[self.roles[layer].index(role)]

    def get_params(self, request: dict[str, Any]) -> dict[str, Any]:
        """Current values of the named parameters (all when none are named)."""
        wanted = request.get("params") or {n: self.roles[n] for n in self.layers}
        return {
            "params": {
                layer: {role: self._param(layer, role).data.copy() for role in roles}
                for layer, roles in wanted.items()
            }
        }

    def set_params(self, request: dict[str, Any]) -> dict[str, Any]:
        """Overwrite parameter values (shapes must match)."""
        for layer, roles in request["params"].items():
            for role, array in roles.items():
                blob = self._param(layer, role)
                if tuple(array.shape) != tuple(blob.data.shape):
                    raise Refused(
                        f"'{layer}/{role}' has shape {tuple(blob.data.shape)}, "
                        f"not {tuple(array.shape)}"
                    )
                blob.data[...] = array
        return {}

    def ascend(self, request: dict[str, Any]) -> dict[str, Any]:
        """Gradient-ascent steps on the input inside this process (see ``explain.ascent``)."""
        from protoedit.explain.ascent import ascend

        absent = [
            request[key]
            for key in ("input", "post", "pre", "mask", "pre_mask")
            if request.get(key) and request[key] not in self.net.blobs
        ]
        if absent:
            raise Refused(f"no blob named {', '.join(map(repr, absent))}")
        return ascend(self.net, request)


#: The nets this worker holds, by id.
_NETS: dict[int, LoadedNet] = {}
_IDS = itertools.count(1)


def _load(request: dict[str, Any], note: Note) -> dict[str, Any]:
    net = LoadedNet()
    info = net.load(request)
    net_id = next(_IDS)
    _NETS[net_id] = net
    return {"net_id": net_id, **info}


def _on_net(method: str) -> Handler:
    """A handler calling ``method`` of the net the request names."""

    def handle(request: dict[str, Any], note: Note) -> dict[str, Any]:
        net = _NETS.get(request.get("net_id", 0))
        if net is None:
            raise Refused("no such net is loaded in this worker", "internal")
        answer: dict[str, Any] = getattr(net, method)(request)
        return answer

    return handle


def _unload(request: dict[str, Any], note: Note) -> dict[str, Any]:
    _NETS.pop(request.get("net_id", 0), None)
    return {}


HANDLERS: dict[str, Handler] = {
    "load": _load,
    "run": _on_net("run"),
    "get_params": _on_net("get_params"),
    "set_params": _on_net("set_params"),
    "ascend": _on_net("ascend"),
    "unload": _unload,
}
