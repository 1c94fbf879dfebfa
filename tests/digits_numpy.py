"""The digits net (fixtures/digits/deploy.prototxt) in plain numpy, float64: the independent
reference for the stepped backward pass, guided backpropagation and the deconvnet.

Convolutions 3x3 pad 1, max pooling 2x2 stride 2 (the first maximum of a window in row-major
order wins, as in Caffe), inner products; the ReLU's backward by rule.  Gradients are keyed as
protoedit keys them: ``NAME``, or ``NAME/before`` and ``NAME/after`` for a blob written in
place.  No protoedit code is used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

F = np.float64


def conv(x: Any, w: Any, b: Any) -> Any:
    """C x H x W -> O x H x W, 3x3 kernel, pad 1."""
    _, height, width = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    out = np.zeros((w.shape[0], height, width), F) + b[:, None, None]
    for a in range(3):
        for c in range(3):
            out += np.einsum("oc,chw->ohw", w[:, :, a, c], padded[:, a : a + height, c : c + width])
    return out


def conv_back(dy: Any, w: Any, shape: tuple[int, int, int]) -> Any:
    """d loss / d input of :func:`conv`."""
    channels, height, width = shape
    padded = np.zeros((channels, height + 2, width + 2), F)
    for a in range(3):
        for c in range(3):
            padded[:, a : a + height, c : c + width] += np.einsum("oc,ohw->chw", w[:, :, a, c], dy)
    return padded[:, 1:-1, 1:-1]


def windows(x: Any) -> Any:
    """C x H x W -> C x H/2 x W/2 x 4 (each 2x2 window in row-major order)."""
    channels, height, width = x.shape
    return (
        x.reshape(channels, height // 2, 2, width // 2, 2)
        .transpose(0, 1, 3, 2, 4)
        .reshape(channels, height // 2, width // 2, 4)
    )


def pool_back(dy: Any, x: Any) -> Any:
    """d loss / d input of 2x2 max pooling."""
    channels, height, width = x.shape
    picked = windows(x).argmax(axis=3)
    dwin = np.zeros((*dy.shape, 4), F)
    np.put_along_axis(dwin, picked[..., None], dy[..., None], axis=3)
    return (
        dwin.reshape(channels, height // 2, width // 2, 2, 2)
        .transpose(0, 1, 3, 2, 4)
        .reshape(channels, height, width)
    )


def relu_back(dy: Any, x: Any, rule: str) -> Any:
    """A ReLU's backward by rule: plain, guided or deconvnet."""
    if rule == "deconvnet":
        return np.maximum(dy, 0)
    if rule == "guided":
        dy = np.maximum(dy, 0)
    return dy * (x > 0)


def forward(params: dict[str, dict[str, Any]], x: Any) -> dict[str, Any]:
    """Every value of the forward pass of one image (1 x 8 x 8), pre-activations included."""
    p = {
        layer: {role: np.asarray(v, F) for role, v in roles.items()}
        for layer, roles in params.items()
    }
    v: dict[str, Any] = {"data": np.asarray(x, F)}
    v["conv1"] = conv(v["data"], p["conv1"]["weight"], p["conv1"]["bias"])
    v["relu1"] = np.maximum(v["conv1"], 0)
    v["pool1"] = windows(v["relu1"]).max(axis=3)
    v["conv2"] = conv(v["pool1"], p["conv2"]["weight"], p["conv2"]["bias"])
    v["relu2"] = np.maximum(v["conv2"], 0)
    v["pool2"] = windows(v["relu2"]).max(axis=3)
    v["ip1"] = p["ip1"]["weight"] @ v["pool2"].reshape(-1) + p["ip1"]["bias"]
    v["relu3"] = np.maximum(v["ip1"], 0)
    v["ip2"] = p["ip2"]["weight"] @ v["relu3"] + p["ip2"]["bias"]
    return v


def backward(params: dict[str, dict[str, Any]], x: Any, logit: int, rule: str) -> dict[str, Any]:
    """The gradient of logit ``logit`` with respect to every blob, ReLUs by ``rule``."""
    p = {
        layer: {role: np.asarray(v, F) for role, v in roles.items()}
        for layer, roles in params.items()
    }
    v = forward(params, x)
    g: dict[str, Any] = {"ip2": np.eye(10, dtype=F)[logit]}
    g["ip1/after"] = p["ip2"]["weight"].T @ g["ip2"]
    g["ip1/before"] = relu_back(g["ip1/after"], v["ip1"], rule)
    g["pool2"] = (p["ip1"]["weight"].T @ g["ip1/before"]).reshape(v["pool2"].shape)
    g["conv2/after"] = pool_back(g["pool2"], v["relu2"])
    g["conv2/before"] = relu_back(g["conv2/after"], v["conv2"], rule)
    g["pool1"] = conv_back(g["conv2/before"], p["conv2"]["weight"], v["pool1"].shape)
    g["conv1/after"] = pool_back(g["pool1"], v["relu1"])
    g["conv1/before"] = relu_back(g["conv1/after"], v["conv1"], rule)
    g["data"] = conv_back(g["conv1/before"], p["conv1"]["weight"], v["data"].shape)
    return g


#: Each ReLU input's fan-in (the products summed into it) and the pooled blob it feeds.
FAN_IN = {"conv1": 9, "conv2": 16 * 9, "ip1": 128}
POOLED = {"relu1": "conv1", "relu2": "conv2"}


def near_ties(params: dict[str, dict[str, Any]], x: Any) -> int:
    """How many ReLU inputs lie within float32 rounding of 0 (but not at it), or pooling
    windows hold a runner-up that close to the maximum (but not equal: an exact tie, such as
    a background of bias values, is computed alike in float32): where Caffe's float32 may
    decide otherwise than float64.  Rounding: ``8 eps32 sqrt(fan-in) max |value|``."""
    v = forward(params, x)
    eps = float(np.finfo(np.float32).eps)
    margin = {n: 8 * eps * np.sqrt(k) * float(np.abs(v[n]).max()) for n, k in FAN_IN.items()}
    count = 0
    for name in FAN_IN:
        count += int(np.sum((np.abs(v[name]) < margin[name]) & (v[name] != 0)))
    for name, source in POOLED.items():
        ordered = np.sort(windows(v[name]), axis=3)
        gap = ordered[..., 3] - ordered[..., 2]
        count += int(np.sum((gap < margin[source]) & (gap > 0)))
    return count
