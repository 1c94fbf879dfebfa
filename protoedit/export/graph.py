"""Build the ONNX graph of a prepared net, layer by layer, with Caffe's blob names.

Value names: the last value of each Caffe blob is named after the blob (what Caffe's
``net.blobs[name]`` holds after a forward).  An earlier value of a blob that in-place layers
rewrite (``conv1`` before ``relu1`` rewrites it) is named ``BLOB@LAYER`` after the layer that
wrote it: ``conv1@conv1``.  Values inside one layer's mapping are ``LAYER/what``.  Split and
Dropout write no node: their tops are their bottoms' values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protoedit.export.mapping import MAPPINGS, ExportError, Graph, Layer, LayerRefused, Shape
from protoedit.export.prepare import Prepared, refuse
from protoedit.net.layers import layer_type
from protoedit.net.shapes import layer_shapes
from protoedit.net.view import BlobVersion, LayerInfo

#: Supplies a layer's parameter blobs: ``(layer, param_shapes) -> blobs``; the random
#: weights also see the values (:mod:`protoedit.export.random`).
Blobs = Callable[[Layer, list[Shape]], list[np.ndarray]]
#: Called after each layer's nodes are written: ``(layer, first_node, first_initializer)``.
After = Callable[[Layer, int, int], None]


@dataclass
class Built:
    """A graph with what the check and the metadata need to know of it."""

    graph: Graph
    names: dict[BlobVersion, str]  # every value's ONNX name
    shapes: dict[str, Shape]  # ONNX name -> static shape
    inputs: dict[str, Shape]
    outputs: list[str]  # the model's outputs (ONNX names = Caffe blob names)
    blob_values: dict[str, str]  # Caffe blob -> ONNX value of its last value
    layers: dict[str, list[str]] = field(default_factory=dict)  # layer -> node op types
    params: dict[str, list[np.ndarray]] = field(default_factory=dict)  # the blobs used


def _classes(prepared: Prepared) -> dict[BlobVersion, BlobVersion]:
    """Each value's representative: Split and Dropout tops stand for their bottom's value."""
    rep: dict[BlobVersion, BlobVersion] = {}
    for info in prepared.layers:
        for read in info.reads:
            rep.setdefault(read, read)
        alias = MAPPINGS[info.type].alias and bool(info.reads)
        for write in info.writes:
            rep[write] = rep.get(info.reads[0], info.reads[0]) if alias else write
    return rep


def value_names(prepared: Prepared, graph: Graph) -> dict[BlobVersion, str]:
    """The ONNX name of every value (see the module docstring)."""
    rep = _classes(prepared)
    finals = prepared.finals()
    final_of = {v: b for b, v in finals.items()}
    by_rep: dict[BlobVersion, list[BlobVersion]] = {}
    for version, root in rep.items():
        by_rep.setdefault(root, []).append(version)
    names: dict[BlobVersion, str] = {}
    graph.used.update(finals)
    for root, members in by_rep.items():
        blobs = [final_of[m] for m in members if m in final_of]
        if root in final_of:
            name = final_of[root]
        elif blobs:
            name = blobs[0]
        else:
            writer = prepared.view.by_index[root.producer].name if root.producer >= 0 else "input"
            name = graph.fresh(f"{root.blob}@{writer}")
        for member in members:
            names[member] = name
    return names


def _out_shapes(prepared: Prepared, info: LayerInfo, param: Any, ins: list[Shape]) -> list[Shape]:
    """A layer's output shapes: its mapping's rule, else the catalogue's."""
    rule = MAPPINGS[info.type].shape
    tops = len(info.writes)
    if rule is not None:
        return [list(s) for s in rule(param, ins, tops)]
    outs = layer_shapes(prepared.view, info, ins)
    if any(s is None for s in outs):
        raise refuse(prepared.doc, info, "its output shape is unknown to protoedit")
    return [list(s) for s in outs if s is not None]


def param_message(info: LayerInfo) -> Any:
    """The layer's ``*_param`` message, None for a type without one."""
    entry = layer_type(info.type)
    field_name = entry.param_field if entry is not None else None
    if field_name is None:
        guess = f"{info.type.lower()}_param"
        field_name = guess if guess in {f.name for f in info.param.DESCRIPTOR.fields} else None
    return getattr(info.param, field_name) if field_name is not None else None


def build(
    prepared: Prepared,
    blobs: Blobs,
    *,
    opset: int,
    after: After | None = None,
    tick: Callable[[], Any] | None = None,
) -> Built:
    """Write every layer's nodes; ``blobs`` gives each layer its parameters; ``tick`` is
    called after each layer (a progress bar)."""
    graph = Graph(opset)
    names = value_names(prepared, graph)
    shapes: dict[str, Shape] = {}
    built = Built(graph, names, shapes, {}, [], {})
    for info in prepared.layers:
        if tick is not None:
            tick()
        param = param_message(info)
        if info.type == "Input":
            for write in info.writes:
                shapes[names[write]] = list(prepared.inputs[write.blob])
                built.inputs[names[write]] = list(prepared.inputs[write.blob])
            continue
        ins_names = [names[r] for r in info.reads]
        ins = [shapes[n] for n in ins_names]
        mapping = MAPPINGS[info.type]
        try:
            out_shapes = _out_shapes(prepared, info, param, ins)
            wanted = mapping.params(param, ins) if mapping.params is not None else []
            layer = Layer(
                info.name,
                info.type,
                param,
                info.param,
                ins_names,
                ins,
                [names[w] for w in info.writes],
                [],
                graph,
                out_shapes,
            )
            layer.blobs = [np.asarray(b, dtype=np.float32) for b in blobs(layer, wanted)]
            first_node, first_init = len(graph.nodes), len(graph.initializers)
            written = mapping.emit(layer)
        except LayerRefused as exc:
            raise refuse(prepared.doc, info, str(exc)) from None
        except ExportError:
            raise
        except (ValueError, IndexError, ArithmeticError, TypeError, AttributeError) as exc:
            raise refuse(prepared.doc, info, f"cannot be mapped: {exc}") from None
        if written != layer.outputs and not mapping.alias:
            raise AssertionError(f"mapping of {info.type} wrote {written}, not {layer.outputs}")
        for name, shape in zip(layer.outputs, out_shapes, strict=False):
            shapes.setdefault(name, shape)
        if layer.blobs:
            built.params[info.name] = layer.blobs
        built.layers[info.name] = [n.op_type for n in graph.nodes[first_node:]]
        if after is not None:
            after(layer, first_node, first_init)
    finals = prepared.finals()
    built.blob_values = {blob: names[v] for blob, v in finals.items()}
    built.outputs = list(dict.fromkeys(names[v] for v in prepared.outputs()))
    return built


def check_weights(
    prepared: Prepared, layer: Layer, wanted: Sequence[Shape], given: Mapping[str, Sequence[Any]]
) -> list[np.ndarray]:
    """The layer's stored blobs, refused by name when missing or not of the net's shapes."""
    info = next(i for i in prepared.layers if i.name == layer.name)
    if not wanted:
        return []
    if layer.name not in given:
        raise refuse(prepared.doc, info, "the weights hold no blobs for this layer")
    stored = [np.asarray(b) for b in given[layer.name]]
    if len(stored) != len(wanted):
        raise refuse(
            prepared.doc, info, f"the weights hold {len(stored)} blobs, the layer has {len(wanted)}"
        )
    out = []
    for k, (array, shape) in enumerate(zip(stored, wanted, strict=True)):
        if tuple(array.shape) != tuple(shape):
            if array.size == int(np.prod(shape)) and _legacy_fits(array.shape, shape):
                array = array.reshape(shape)
            else:
                raise refuse(
                    prepared.doc,
                    info,
                    f"weights blob {k} has shape {list(array.shape)}, the net needs {list(shape)}",
                )
        out.append(array)
    return out


def _legacy_fits(stored: Sequence[int], shape: Sequence[int]) -> bool:
    """Caffe's legacy 4-D blobs: the net's shape padded with leading 1s."""
    return (
        len(stored) == 4
        and len(shape) <= 4
        and tuple(stored) == (1,) * (4 - len(shape)) + tuple(shape)
    )
