"""``to_onnx``: a Caffe net and its weights as an ONNX model, checked by ONNX itself.

Every model made here passes ``onnx.checker`` with ``full_check`` and ONNX's strict shape
inference, and records in its metadata the SHA-256 of its sources, protoedit's version and
the layer mapping (which ONNX ops each Caffe layer became).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
import onnx
from onnx import helper

from protoedit.document import Document
from protoedit.export import layers as _registered  # noqa: F401 - every mapping
from protoedit.export.graph import Built, build, check_weights
from protoedit.export.mapping import ExportError, Layer, Shape
from protoedit.export.prepare import InputShape, Prepared, prepare
from protoedit.export.random import RandomWeights

#: The opset written unless asked otherwise, and the range the mappings support.
DEFAULT_OPSET = 17
MIN_OPSET = 13
#: Types whose inputs are time-major (axis 0 is time, not the batch).
RECURRENT = ("LSTM", "RNN")
#: The batch axis of every input is this symbolic dimension unless ``dynamic_batch=False``.
BATCH = "N"

WeightsLike = Mapping[str, Any] | str | os.PathLike[str] | None


@dataclass
class Exported:
    """A model with what the check needs: the built graph and the prepared net."""

    model: onnx.ModelProto
    built: Built
    prepared: Prepared
    weights: dict[str, list[np.ndarray]]  # the parameter blobs used, by layer
    dynamic_batch: bool = True  # axis 0 of every input is the symbolic batch

    def with_outputs(self, names: Sequence[str]) -> onnx.ModelProto:
        """The model with ``names`` as extra outputs (the check compares every value)."""
        extended = onnx.ModelProto()
        extended.CopyFrom(self.model)
        have = {o.name for o in extended.graph.output}
        for name in names:
            if name not in have and name not in self.built.inputs:
                extended.graph.output.append(_open(name, self.built.shapes[name]))
                have.add(name)
        return extended


def max_opset() -> int:
    """The newest opset both onnx and onnxruntime here know."""
    import onnxruntime

    known = onnx.defs.onnx_opset_version()
    runtime = {"1.17": 20, "1.18": 21, "1.19": 21, "1.20": 21}.get(
        ".".join(onnxruntime.__version__.split(".")[:2]), 22
    )
    return min(known, runtime)


def _blobs_of(weights: Mapping[str, Any]) -> dict[str, list[np.ndarray]]:
    """Layer -> blobs from a ``protoedit.weights.Weights`` or a plain mapping of arrays."""
    return {
        name: [np.asarray(b) for b in getattr(value, "blobs", value)]
        for name, value in weights.items()
    }


def load_weights(path: str | os.PathLike[str]) -> dict[str, list[np.ndarray]]:
    """A ``.caffemodel`` read without Caffe (:func:`protoedit.weights.load`), as layer -> blobs."""
    from protoedit.weights import load

    return _blobs_of(load(path))


def sha256(data: bytes) -> str:
    """The hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _version() -> str:
    try:
        return metadata.version("protoedit")
    except metadata.PackageNotFoundError:
        return "unknown"


def export(
    doc: Document,
    weights: WeightsLike = None,
    *,
    opset: int = DEFAULT_OPSET,
    input_shape: InputShape = None,
    until: str | None = None,
    dynamic_batch: bool = True,
    seed: int = 0,
    progress: bool | None = False,
) -> Exported:
    """:func:`to_onnx`, keeping what :func:`protoedit.export.check` needs; ``progress``
    shows a bar over the layers (``None``: on a terminal)."""
    from protoedit.progress import progress_bar

    if not MIN_OPSET <= opset <= max_opset():
        raise ExportError(f"opset {opset} is not supported: use {MIN_OPSET} to {max_opset()}")
    prepared = prepare(doc, input_shape=input_shape, until=until)
    sources = {"net": sha256(doc.dumps().encode("utf-8", errors="surrogateescape"))}
    if isinstance(weights, (str, os.PathLike)):
        with open(weights, "rb") as handle:
            sources["weights"] = sha256(handle.read())
        given: dict[str, list[np.ndarray]] | None = load_weights(weights)
    else:
        given = _blobs_of(weights) if weights is not None else None
    recurrent = any(i.type in RECURRENT for i in prepared.layers)
    if given is not None:
        held = given

        def supply(layer: Layer, wanted: list[Shape]) -> list[np.ndarray]:
            return check_weights(prepared, layer, wanted, held)

        with progress_bar(len(prepared.layers), unit="layer", enabled=progress) as bar:
            built = build(prepared, supply, opset=opset, tick=bar.update)
    else:
        random = RandomWeights(prepared.inputs, seed, batch_one=not recurrent)
        with progress_bar(len(prepared.layers), unit="layer", enabled=progress) as bar:
            built = build(prepared, random, opset=opset, after=random.after, tick=bar.update)
        sources["weights"] = f"random (seed {seed}, calibrated to unit spread)"
    # A recurrent layer's inputs are time-major (T x N x ...) and unrolled: no dynamic axis 0.
    dynamic = dynamic_batch and not recurrent
    model = _model(built, opset, dynamic, sources)
    verify(model)
    return Exported(model, built, prepared, built.params, dynamic)


def to_onnx(
    doc: Document,
    weights: WeightsLike = None,
    *,
    opset: int = DEFAULT_OPSET,
    input_shape: InputShape = None,
    until: str | None = None,
    dynamic_batch: bool = True,
    seed: int = 0,
) -> onnx.ModelProto:
    """The net as an ONNX model.  ``weights``: a ``.caffemodel`` path, a
    ``protoedit.weights.Weights`` or a mapping layer -> blobs; ``None`` draws random weights
    calibrated to unit spread (``seed``).  The net is upgraded and filtered to the TEST phase
    first; ``input_shape`` overrides its input shape (one shape, or one per input name);
    ``until`` exports the layers before that layer.  Raises :class:`ExportError` (located,
    naming the layer) for what has no ONNX form or weights that do not fit."""
    return export(
        doc,
        weights,
        opset=opset,
        input_shape=input_shape,
        until=until,
        dynamic_batch=dynamic_batch,
        seed=seed,
    ).model


def _model(
    built: Built, opset: int, dynamic_batch: bool, sources: dict[str, str]
) -> onnx.ModelProto:
    def info(name: str, shape: Shape | None) -> onnx.ValueInfoProto:
        dims: list[int | str] | None = None
        if shape is not None:
            dims = [BATCH if dynamic_batch and k == 0 else d for k, d in enumerate(shape)]
        return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, dims)

    graph = helper.make_graph(
        built.graph.nodes,
        "caffe",
        [info(n, s) for n, s in built.inputs.items()],
        [_open(n, built.shapes[n]) for n in built.outputs],
        built.graph.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="protoedit",
        producer_version=_version(),
        doc_string="Exported from Caffe by protoedit",
    )
    model.ir_version = min(model.ir_version, 9 if opset <= 21 else model.ir_version)
    meta = {
        "protoedit.version": _version(),
        "protoedit.source.net.sha256": sources["net"],
        "protoedit.source.weights": sources.get("weights", ""),
        "protoedit.layer_mapping": json.dumps(built.layers, separators=(",", ":")),
        "protoedit.value_names": "last value of a blob: the blob's name; earlier values of an "
        "in-place chain: BLOB@LAYER (the layer that wrote it)",
    }
    helper.set_model_props(model, meta)
    try:
        _inferred_outputs(model)
    except onnx.shape_inference.InferenceError as exc:
        raise AssertionError(f"protoedit wrote an invalid ONNX model: {exc}") from exc
    return model


def _open(name: str, shape: Shape) -> onnx.ValueInfoProto:
    """An output of ``shape``'s rank, its sizes left to shape inference."""
    return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [None] * len(shape))


def _inferred_outputs(model: onnx.ModelProto) -> None:
    """Give the outputs the shapes ONNX infers (symbolic batch included)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    types = {v.name: v.type for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for output in model.graph.output:
        if output.name in types and types[output.name].tensor_type.HasField("shape"):
            output.type.CopyFrom(types[output.name])


def verify(model: onnx.ModelProto) -> None:
    """ONNX's own checks: the checker with ``full_check`` and strict shape inference."""
    try:
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise AssertionError(f"protoedit wrote an invalid ONNX model: {exc}") from exc
