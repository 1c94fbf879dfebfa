"""How one Caffe layer becomes ONNX nodes: the registry of mappings (one per catalogue type
name), the context a mapping receives, and the graph builder the mappings write into.

A mapping's ``emit`` writes nodes for one layer and returns the ONNX value of each top;
``params`` gives the shapes of its parameter blobs (Caffe's order, from its input shapes) so
that weights can be matched and random ones drawn; ``shape`` gives its output shapes where
the catalogue has no shape rule.  ``alias`` mappings (Split, Dropout) write no node: their
tops are their bottoms' values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from protoedit.errors import InputError

Shape = list[int]


class ExportError(InputError):
    """A net, a layer or weights that cannot be exported: located, naming the layer."""


class LayerRefused(Exception):
    """Raised by a mapping for parameters it cannot express; the builder locates it."""


@dataclass
class Graph:
    """The nodes and initializers written so far, with unique value names."""

    opset: int
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    #: Constants by ONNX name, so later layers (and the calibration) can read them.
    constants: dict[str, np.ndarray] = field(default_factory=dict)

    def fresh(self, hint: str) -> str:
        """A value name not used yet, ``hint`` itself when free."""
        name, k = hint, 1
        while name in self.used:
            k += 1
            name = f"{hint}_{k}"
        self.used.add(name)
        return name

    def node(
        self,
        op: str,
        inputs: Sequence[str],
        hint: str,
        outputs: Sequence[str] | int = 1,
        **attrs: Any,
    ) -> list[str]:
        """Add one node; ``outputs`` are names, or a count of fresh names from ``hint``."""
        if isinstance(outputs, int):
            outputs = [self.fresh(hint if outputs == 1 else f"{hint}:{k}") for k in range(outputs)]
        name = self.fresh(f"{hint}#{op}")
        self.nodes.append(helper.make_node(op, list(inputs), list(outputs), name=name, **attrs))
        return list(outputs)

    def one(
        self, op: str, inputs: Sequence[str], hint: str, out: str | None = None, **attrs: Any
    ) -> str:
        """Add a node with one output (named ``out`` when given) and return it."""
        return self.node(op, inputs, hint, [out] if out else 1, **attrs)[0]

    def const(self, array: Any, hint: str, dtype: Any = np.float32) -> str:
        """An initializer holding ``array`` (float32 unless ``dtype`` says otherwise)."""
        value = np.asarray(array, dtype=dtype)
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(value, name))
        self.constants[name] = value
        return name

    def ints(self, values: Sequence[int], hint: str) -> str:
        """An int64 initializer (shapes, axes, pads)."""
        return self.const(np.asarray(list(values), dtype=np.int64), hint, np.int64)

    def reduce(self, op: str, x: str, axes: Sequence[int], hint: str, keepdims: int = 1) -> str:
        """``ReduceSum``/``ReduceMean``/...: axes an attribute before opset 18 (ReduceSum 13),
        an input from then on."""
        takes_input = self.opset >= 18 or (op == "ReduceSum" and self.opset >= 13)
        if takes_input:
            return self.one(op, [x, self.ints(axes, f"{hint}/axes")], hint, keepdims=keepdims)
        return self.one(op, [x], hint, axes=list(axes), keepdims=keepdims)

    def reshape(self, x: str, shape: Sequence[int], hint: str, out: str | None = None) -> str:
        """``Reshape`` to ``shape`` (0 copies the input's axis at the same index, -1 infers)."""
        return self.one("Reshape", [x, self.ints(shape, f"{hint}/shape")], hint, out)


@dataclass
class Layer:
    """One layer as a mapping sees it."""

    name: str
    type: str
    param: Any  # the layer's ``*_param`` message (None for a type without one)
    layer: Any  # the whole caffe.LayerParameter
    inputs: list[str]  # ONNX values of the bottoms
    shapes: list[Shape]  # their static shapes (batch included)
    outputs: list[str]  # the ONNX names the tops should get
    blobs: list[np.ndarray]  # the parameter blobs, in Caffe's order
    graph: Graph
    out_shapes: list[Shape] = field(default_factory=list)

    def hint(self, what: str) -> str:
        """The name of an intermediate value of this layer."""
        return f"{self.name}/{what}"

    def blob(self, k: int, hint: str, shape: Sequence[int] | None = None) -> str:
        """Parameter blob ``k`` as an initializer (reshaped to ``shape`` when given)."""
        array = self.blobs[k]
        return self.graph.const(
            array.reshape(shape) if shape is not None else array, self.hint(hint)
        )

    def one(self, op: str, inputs: Sequence[str], out: int | None = 0, **attrs: Any) -> str:
        """A node writing top ``out`` (or an intermediate when ``out`` is None)."""
        name = self.outputs[out] if out is not None else None
        return self.graph.one(op, inputs, self.hint(op.lower()), name, **attrs)


Emit = Callable[[Layer], list[str]]
ShapeRule = Callable[[Any, list[Shape], int], list[Shape]]
Params = Callable[[Any, list[Shape]], list[Shape]]


@dataclass(frozen=True)
class Mapping:
    """What a layer type becomes (see the module docstring)."""

    emit: Emit
    params: Params | None = None
    shape: ShapeRule | None = None
    alias: bool = False
    #: How the calibrated random weights are drawn (:mod:`protoedit.export.random`).
    init: str = "none"


#: Mappings by catalogue type name.
MAPPINGS: dict[str, Mapping] = {}


def mapping(
    *types: str,
    params: Params | None = None,
    shape: ShapeRule | None = None,
    alias: bool = False,
    init: str = "none",
) -> Callable[[Emit], Emit]:
    """Register ``emit`` as the mapping of ``types``."""

    def register(emit: Emit) -> Emit:
        for kind in types:
            MAPPINGS[kind] = Mapping(emit, params, shape, alias, init)
        return emit

    return register


# -- helpers the mappings share ------------------------------------------------------------


def axis_of(axis: int, rank: int) -> int:
    """Caffe's ``CanonicalAxisIndex``."""
    if not -rank <= axis < rank:
        raise LayerRefused(f"axis {axis} is out of range for a {rank}-D input")
    return axis + rank if axis < 0 else axis


def spatial(param: Any, what: str, axes: int, default: int) -> list[int]:
    """Per-spatial-axis values of ``what`` (``kernel``, ``pad``, ``stride``): its ``_h``/``_w``
    pair when set (Caffe asks ``has_``: a fork may give them defaults), else the repeated
    ``kernel_size``/``pad``/``stride`` field (one value for every axis, or one each)."""
    h, w = f"{what}_h", f"{what}_w"
    fields = param.DESCRIPTOR.fields_by_name
    if h in fields and (param.HasField(h) or param.HasField(w)):
        return [int(getattr(param, h)), int(getattr(param, w))]
    items = [int(v) for v in getattr(param, "kernel_size" if what == "kernel" else what)]
    if not items:
        return [default] * axes
    return items * axes if len(items) == 1 else items


def broadcast_shape(shape: Sequence[int], trailing: int) -> list[int]:
    """``shape`` with ``trailing`` 1s, so it broadcasts from an axis against the input."""
    return [*shape, *([1] * trailing)]


FLOAT = TensorProto.FLOAT
