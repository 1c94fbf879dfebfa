"""Caffe's LSTM, unrolled over its (static) number of time steps.

Caffe's LSTM reads ``x`` (T x N x ...) and ``cont`` (T x N: 0 starts a sequence), learns
``W_xc`` (4H x I), ``b_c`` (4H) and ``W_hc`` (4H x H), and at each step computes the gates
from ``W_hc (cont_t h_{t-1}) + W_xc x_t + b_c`` in the order i, f, o, g, then
``c_t = cont_t f c_{t-1} + i g`` and ``h_t = o tanh(c_t)``; its top is every ``h_t``
(T x N x H).  ONNX's LSTM has no ``cont``, so the steps are written out one by one.
"""

from __future__ import annotations

import math
from typing import Any

from protoedit.export.mapping import Layer, LayerRefused, Shape, mapping


def _lstm_params(p: Any, ins: list[Shape]) -> list[Shape]:
    hidden = int(p.num_output)
    features = math.prod(ins[0][2:])
    return [[4 * hidden, features], [4 * hidden], [4 * hidden, hidden]]


def _lstm_shape(p: Any, ins: list[Shape], tops: int) -> list[Shape]:
    return [[ins[0][0], ins[0][1], int(p.num_output)]]


@mapping("LSTM", params=_lstm_params, shape=_lstm_shape, init="recurrent")
def _lstm(layer: Layer) -> list[str]:
    p = layer.param
    if len(layer.inputs) != 2 or len(layer.outputs) != 1:
        raise LayerRefused("a static input or exposed hidden state has no ONNX form here")
    g = layer.graph
    steps, hidden = layer.shapes[0][0], int(p.num_output)
    x = g.reshape(layer.inputs[0], [0, 0, -1], layer.hint("x"))
    w_xc = g.const(layer.blobs[0].T, layer.hint("W_xc"))
    projected = g.one("MatMul", [x, w_xc], layer.hint("W_xc_x"))
    gates_x = g.one("Add", [projected, layer.blob(1, "b_c")], layer.hint("W_xc_x_b"))
    cont = g.reshape(layer.inputs[1], [0, 0, 1], layer.hint("cont"))
    w_hc = g.const(layer.blobs[2].T, layer.hint("W_hc"))
    sizes = g.ints([hidden] * 4, layer.hint("gate_sizes"))
    h = c = ""
    outputs = []
    for t in range(steps):
        at = g.ints([t], layer.hint(f"t{t}"))
        step = g.one("Gather", [gates_x, at], layer.hint(f"x{t}"), axis=0)
        step = g.reshape(step, [-1, 4 * hidden], layer.hint(f"x{t}/2d"))
        keep = g.reshape(
            g.one("Gather", [cont, at], layer.hint(f"cont{t}"), axis=0),
            [-1, 1],
            layer.hint(f"cont{t}/2d"),
        )
        if t:
            h_conted = g.one("Mul", [h, keep], layer.hint(f"h_conted{t}"))
            recurrent = g.one("MatMul", [h_conted, w_hc], layer.hint(f"W_hc_h{t}"))
            step = g.one("Add", [recurrent, step], layer.hint(f"gates{t}"))
        i, f, o, cell = g.node("Split", [step, sizes], layer.hint(f"split{t}"), 4, axis=1)
        i = g.one("Sigmoid", [i], layer.hint(f"i{t}"))
        o = g.one("Sigmoid", [o], layer.hint(f"o{t}"))
        cell = g.one("Tanh", [cell], layer.hint(f"g{t}"))
        new = g.one("Mul", [i, cell], layer.hint(f"ig{t}"))
        if t:
            f = g.one("Sigmoid", [f], layer.hint(f"f{t}"))
            kept = g.one(
                "Mul", [g.one("Mul", [keep, f], layer.hint(f"cf{t}")), c], layer.hint(f"fc{t}")
            )
            new = g.one("Add", [kept, new], layer.hint(f"c{t}"))
        c = new
        h = g.one("Mul", [o, g.one("Tanh", [c], layer.hint(f"tanh_c{t}"))], layer.hint(f"h{t}"))
        outputs.append(g.reshape(h, [1, -1, hidden], layer.hint(f"h{t}/3d")))
    if len(outputs) == 1:
        return [layer.one("Identity", outputs)]
    return [layer.one("Concat", outputs, axis=0)]
