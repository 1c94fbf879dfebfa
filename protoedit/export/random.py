"""Random weights that keep every activation at unit spread, drawn layer by layer.

A check on plain random weights proves little: a deep net's activations grow or vanish, a
softmax saturates to exact 0 and 1, and a wrong layer below it goes unseen.  Here each layer's
weights are drawn, the layer is run (onnxruntime, on the values the layers before it gave for
seeded normal inputs) and its weights and bias are divided by the spread of its output, so
the next layer again sees unit spread.  BatchNorm gets statistics near the true ones of its
input, with a ``scale_factor`` that is not 1; Scale, PReLU and Normalize get factors away
from 1 and offsets away from 0, so a mapping that ignored them would show.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper

from protoedit.export.mapping import Graph, Layer, Shape


def session_options() -> Any:
    """One thread, no log noise: onnxruntime in the caller's process stays quiet and small."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return options


def run_nodes(
    graph: Graph, first_node: int, inputs: dict[str, np.ndarray], outputs: list[str]
) -> list[np.ndarray]:
    """Run the nodes written since ``first_node`` on ``inputs`` (onnxruntime)."""
    import onnxruntime

    nodes = graph.nodes[first_node:]
    used = {name for node in nodes for name in node.input}
    initializers = [t for t in graph.initializers if t.name in used and t.name not in inputs]
    model = helper.make_model(
        helper.make_graph(
            nodes,
            "layer",
            [
                helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, list(v.shape))
                for n, v in inputs.items()
            ],
            [
                helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                for n in dict.fromkeys(outputs)
            ],
            initializers,
        ),
        opset_imports=[helper.make_opsetid("", graph.opset)],
    )
    model.ir_version = min(model.ir_version, 9)
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), session_options(), providers=["CPUExecutionProvider"]
    )
    results = session.run(list(dict.fromkeys(outputs)), inputs)
    by_name = dict(zip(dict.fromkeys(outputs), results, strict=True))
    return [np.asarray(by_name[n]) for n in outputs]


class RandomWeights:
    """The blob supplier of :func:`protoedit.export.graph.build` for calibrated random weights
    (and the ``after`` hook that runs each layer to know what the next one sees)."""

    def __init__(self, inputs: dict[str, Shape], seed: int = 0, batch_one: bool = True) -> None:
        """``inputs``: their shapes; ``batch_one``: calibrate on one sample (axis 0 is the
        batch; not so for a recurrent net's time-major inputs)."""
        self.rng = np.random.default_rng(seed)
        self.values: dict[str, np.ndarray] = {
            name: self.rng.standard_normal([1, *shape[1:]] if batch_one else shape).astype(
                np.float32
            )
            for name, shape in inputs.items()
        }

    def _inputs(self, layer: Layer) -> dict[str, np.ndarray]:
        return {n: self.values[n] for n in dict.fromkeys(layer.inputs)}

    def __call__(self, layer: Layer, wanted: list[Shape]) -> list[np.ndarray]:
        """Draw the layer's blobs (``wanted`` shapes), calibrated on its current input."""
        from protoedit.export.mapping import MAPPINGS

        if not wanted:
            return []
        init = MAPPINGS[layer.type].init
        rng = self.rng
        x = self.values[layer.inputs[0]] if layer.inputs else None
        if init == "batch_norm":
            return self._batch_norm(x, wanted)
        if init in ("scale", "bias"):
            return [
                (
                    rng.uniform(0.5, 1.5, s)
                    if k == 0 and init == "scale"
                    else rng.normal(0, 0.3, s)
                ).astype(np.float32)
                for k, s in enumerate(wanted)
            ]
        if init == "slope":
            return [rng.uniform(0.05, 0.5, wanted[0]).astype(np.float32)]
        if init == "normalize":
            return [rng.uniform(2.0, 20.0, wanted[0]).astype(np.float32)]
        if init == "weight":
            return self._weight(layer, wanted)
        if init == "recurrent":  # fan-in scaled matrices, a small bias: no gate saturates
            return [
                rng.normal(0, 1 / np.sqrt(s[1]) if len(s) > 1 else 0.2, s).astype(np.float32)
                for s in wanted
            ]
        return [rng.standard_normal(s).astype(np.float32) for s in wanted]

    def _batch_norm(self, x: Any, wanted: list[Shape]) -> list[np.ndarray]:
        axes = tuple(a for a in range(x.ndim) if a != 1)
        mean = x.mean(axis=axes, dtype=np.float64)
        var = x.var(axis=axes, dtype=np.float64) + 1e-3
        factor = float(self.rng.uniform(0.5, 2.0))
        mean = mean + self.rng.normal(0, 0.2, mean.shape) * np.sqrt(var)
        var = var * self.rng.uniform(0.5, 2.0, var.shape)
        blobs = [mean * factor, var * factor, np.array([factor])]
        return [b.reshape(s).astype(np.float32) for b, s in zip(blobs, wanted, strict=True)]

    def _weight(self, layer: Layer, wanted: list[Shape]) -> list[np.ndarray]:
        """Normal weights (fan-in scaled), a small bias; then both divided by the output's
        spread, measured by running the layer."""
        from protoedit.export.mapping import MAPPINGS

        shape = wanted[0]
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        if layer.type == "InnerProduct" and layer.param.transpose:
            fan_in = shape[0]
        if layer.type == "Deconvolution":
            group = int(layer.param.group) or 1
            fan_in = max(1, int(np.prod(shape[2:])) * shape[0] // group)
        blobs = [self.rng.normal(0, 1 / np.sqrt(fan_in), shape).astype(np.float32)]
        blobs += [self.rng.normal(0, 0.2, s).astype(np.float32) for s in wanted[1:]]
        trial = Layer(
            layer.name,
            layer.type,
            layer.param,
            layer.layer,
            layer.inputs,
            layer.shapes,
            [f"{o}#trial" for o in layer.outputs],
            blobs,
            Graph(layer.graph.opset),
            layer.out_shapes,
        )
        MAPPINGS[layer.type].emit(trial)
        (y,) = run_nodes(trial.graph, 0, self._inputs(layer), trial.outputs[:1])
        spread = float(np.std(y, dtype=np.float64))
        if spread > 0 and np.isfinite(spread):
            blobs = [(b / spread).astype(np.float32) for b in blobs]
        return blobs

    def after(self, layer: Layer, first_node: int, first_initializer: int) -> None:
        """Run the layer's nodes to know what the layers after it see."""
        outs = [o for o in layer.outputs if o not in self.values]
        if not outs:
            return
        for name, value in zip(
            outs, run_nodes(layer.graph, first_node, self._inputs(layer), outs), strict=True
        ):
            self.values[name] = value
