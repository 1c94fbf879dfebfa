"""The net an export works on: a copy of the document, upgraded and filtered to the TEST
phase as the other rewrites do, its input shapes (``input_shape`` overrides them), the
layers to export (those before ``until``) and the refusals of what has no ONNX form."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from protoedit.document import Document, loads
from protoedit.export.mapping import MAPPINGS, ExportError
from protoedit.net.layers import ACCURACY, DATA, LOSS, PYTHON, is_a, is_data_layer
from protoedit.net.view import BlobVersion, LayerInfo, NetView
from protoedit.rewrites import filter_net, needs_upgrade, upgrade

Shape = list[int]
InputShape = Sequence[int] | Mapping[str, Sequence[int]] | None


@dataclass
class Prepared:
    """An upgraded, TEST-phase copy of a net and what the export keeps of it."""

    doc: Document
    view: NetView
    layers: list[LayerInfo]  # the layers exported, in order
    inputs: dict[str, Shape]  # input blob -> static shape (batch included)

    def finals(self) -> dict[str, BlobVersion]:
        """The last value of each blob among the exported layers (Caffe's ``net.blobs``)."""
        latest: dict[str, BlobVersion] = {}
        for info in self.layers:
            for write in info.writes:
                latest[write.blob] = write
        return latest

    def outputs(self) -> list[BlobVersion]:
        """Final values no exported layer reads: the model's outputs (Caffe's ``outputs``)."""
        read = {r for info in self.layers for r in info.reads}
        inputs = {w for info in self.layers if info.type == "Input" for w in info.writes}
        return [v for v in self.finals().values() if v not in read and v not in inputs]


def refuse(doc: Document, info: LayerInfo, reason: str) -> ExportError:
    """The located error for a layer the export cannot express."""
    return ExportError(f"layer '{info.name}' ({info.type}): {reason}", doc.location(info.pos))


def _reason(info: LayerInfo) -> str | None:
    """Why a layer has no ONNX form (None when it has one)."""
    if is_a(info.type, PYTHON):
        return "a Python layer runs user code: no ONNX form"
    if is_data_layer(info.param) or is_a(info.type, DATA):
        return "reads its data from files; export the deploy net (protoedit to-deploy)"
    if is_a(info.type, LOSS) or is_a(info.type, ACCURACY):
        return "compares with labels (a loss or an accuracy); export the deploy net"
    if info.type not in MAPPINGS:
        return "no ONNX mapping for this type"
    return None


def prepare(doc: Document, *, input_shape: InputShape = None, until: str | None = None) -> Prepared:
    """The net to export (see the module docstring); refuses with a located error."""
    copy = loads(doc.dumps(), doc.schema, path=doc.path)
    if needs_upgrade(copy):
        upgrade(copy)
    filter_net(copy, "TEST")
    view = NetView(copy)
    layers = list(view.layers)
    if until is not None:
        cut = view.layer_named(until)
        if cut is None:
            raise ExportError(f"--until: no layer named '{until}'", copy.location(0))
        layers = [info for info in layers if info.index < cut.index]
    if view.unresolved:
        index, blob = view.unresolved[0]
        raise refuse(copy, view.by_index[index], f"reads blob '{blob}', which no layer writes")
    for info in layers:
        reason = _reason(info)
        if reason is not None:
            raise refuse(copy, info, reason)
    inputs = _inputs(copy, layers, input_shape)
    return Prepared(copy, view, layers, inputs)


def _inputs(doc: Document, layers: list[LayerInfo], given: InputShape) -> dict[str, Shape]:
    """Each Input top's shape: declared, or as ``given`` (one shape for a net with one input,
    else a shape per input name)."""
    shapes: dict[str, Shape] = {}
    for info in layers:
        if info.type != "Input":
            continue
        declared = [list(s.dim) for s in info.param.input_param.shape]
        for k, write in enumerate(info.writes):
            if declared:
                shapes[write.blob] = [int(d) for d in declared[k if len(declared) > 1 else 0]]
    if given is not None:
        if isinstance(given, Mapping):
            unknown = sorted(
                set(given)
                - set(shapes)
                - {w.blob for i in layers if i.type == "Input" for w in i.writes}
            )
            if unknown:
                raise ExportError(f"input_shape names no input of the net: {', '.join(unknown)}")
            shapes.update({k: [int(d) for d in v] for k, v in given.items()})
        else:
            names = [w.blob for i in layers if i.type == "Input" for w in i.writes]
            if len(names) != 1:
                raise ExportError(f"the net has {len(names)} inputs; give a shape per input name")
            shapes[names[0]] = [int(d) for d in given]
    for info in layers:
        for write in info.writes if info.type == "Input" else []:
            if write.blob not in shapes:
                raise ExportError(
                    f"input '{write.blob}' declares no shape; give one (--input-shape)",
                    doc.location(info.pos),
                )
            if any(d < 1 for d in shapes[write.blob]):
                raise ExportError(f"input '{write.blob}' has shape {shapes[write.blob]}")
    if not shapes:
        raise ExportError("the net has no Input layer or input header", doc.location(0))
    return shapes
