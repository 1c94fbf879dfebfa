"""Gradients by layer name: ``d loss / d param`` for every learnable blob, ``d loss / d input``.

The loss is either an activation head on a target (the ``aux`` rewrite: truncate, loss head,
``force_backward``) or a loss the net already computes (``loss=BLOB``: the net truncated to
that blob's ancestors, with ``force_backward`` so input gradients flow).  Either way the net
is rewritten in memory and run once, forward and backward, in a Caffe worker process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from protoedit.caffe.session import Session
from protoedit.document import Document, load
from protoedit.errors import InputError, Location, MissingArgumentError
from protoedit.explain.preprocess import Preprocess, load_input
from protoedit.explain.session import DEFAULT_TIMEOUT, CaffeSession
from protoedit.net.layers import DATA, is_a, is_loss, no_backward, param_key
from protoedit.net.shapes import infer_shapes
from protoedit.net.view import NetView
from protoedit.rewrites import LossHead, aux, filter_net, force_backward, truncate
from protoedit.rewrites.report import RewriteReport
from protoedit.rewrites.upgrade import needs_upgrade, upgrade

Array = npt.NDArray[np.float32]
#: Key prefix of input gradients in :meth:`Gradients.flat` (no parameter role is a blob name).
INPUT_PREFIX = "input/"

NetSource = Document | str | os.PathLike[str]
InputSource = npt.ArrayLike | str | os.PathLike[str]


@dataclass
class Gradients(Mapping[str, dict[str, Array]]):
    """``d loss / d param`` by layer name then role; ``inputs`` by input blob name."""

    params: dict[str, dict[str, Array]]
    inputs: dict[str, Array]
    loss: float
    param_norms: dict[str, dict[str, float]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    report: RewriteReport = field(default_factory=RewriteReport)

    def __getitem__(self, layer: str) -> dict[str, Array]:
        return self.params[layer]

    def __iter__(self) -> Iterator[str]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def flat(self) -> dict[str, Array]:
        """One array per key: ``LAYER/ROLE`` for parameters, ``input/BLOB`` for inputs."""
        out = {
            param_key(layer, role): g
            for layer, roles in self.params.items()
            for role, g in roles.items()
        }
        out.update({INPUT_PREFIX + blob: g for blob, g in self.inputs.items()})
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`flat` as an ``.npz``."""
        with open(path, "wb") as handle:
            np.savez(handle, **self.flat())  # type: ignore[arg-type]

    def rows(self) -> list[tuple[str, str, tuple[int, ...], float, float | None]]:
        """Table rows: layer, role, shape, |grad|, |grad| / |param| (None for inputs or 0)."""
        rows: list[tuple[str, str, tuple[int, ...], float, float | None]] = []
        for layer, roles in self.params.items():
            for role, grad in roles.items():
                norm = float(np.linalg.norm(grad.astype(np.float64)))
                value = self.param_norms.get(layer, {}).get(role, 0.0)
                rows.append((layer, role, tuple(grad.shape), norm, norm / value if value else None))
        for blob, grad in self.inputs.items():
            norm = float(np.linalg.norm(grad.astype(np.float64)))
            rows.append((blob, "input", tuple(grad.shape), norm, None))
        return rows


def _document(net: NetSource) -> Document:
    """A private copy of ``net`` to rewrite (a Document given by the caller stays untouched)."""
    if isinstance(net, Document):
        from protoedit.document import loads

        return loads(
            net.dumps(), net.schema, net.lenient, path=net.path, message_type=net.message_type
        )
    return load(net)


def loss_net(doc: Document, loss: str) -> RewriteReport:
    """Make ``doc`` compute only the net's own loss ``loss`` (a blob), with input gradients.

    The net is filtered for the TEST phase (the phase the worker runs), must be fed through
    Input layers (data layers read files a gradient call has no use for), and may contain
    loss layers with labels but nothing else that cannot run backward.
    """
    report = RewriteReport()
    if needs_upgrade(doc):
        report.extend(upgrade(doc))
    report.extend(filter_net(doc, "TEST"))
    view = NetView(doc)
    version = view.resolve(loss)
    producer = view.by_index.get(version.producer)
    if producer is None or not (is_loss(producer.type) or len(producer.param.loss_weight)):
        raise InputError(f"'{loss}' is not a loss: no loss layer or loss_weight produces it")
    for index in sorted(view.ancestors([version])):
        info = view.by_index[index]
        if is_a(info.type, DATA):
            raise InputError(
                f"layer '{info.name}' ({info.type}) reads its data from files; a gradient "
                "needs the data given: feed the net through Input layers",
                doc.location(info.pos),
            )
        if no_backward(info.type) and not is_loss(info.type):
            raise InputError(
                f"layer '{info.name}' ({info.type}) cannot run backward, and the loss "
                "depends on it",
                doc.location(info.pos),
            )
    report.extend(force_backward(doc))
    report.extend(truncate(doc, loss))
    return report


def prepare(
    net: NetSource,
    *,
    target: str | None = None,
    head: LossHead | None = None,
    loss: str | None = None,
    after_inplace: bool = False,
    channels: int | None = None,
) -> tuple[Document, RewriteReport]:
    """The rewritten net whose loss is ``head`` on ``target``, or the net's own ``loss``."""
    if (target is None) == (loss is None):
        raise InputError("give a target (with a loss head) or a loss blob, exactly one")
    doc = _document(net)
    if loss is not None:
        return doc, loss_net(doc, loss)
    assert target is not None
    report = aux(doc, target, head or LossHead(), after_inplace, channels)
    return doc, report


def input_shapes(doc: Document) -> dict[str, tuple[int, ...]]:
    """Declared shapes of the net's Input blobs (what images are fitted to)."""
    view = NetView(doc)
    shapes = infer_shapes(view)
    out: dict[str, tuple[int, ...]] = {}
    for info in view.layers:
        if info.type == "Input":
            for version in info.writes:
                shape = shapes.get(version)
                if shape is not None:
                    out[version.blob] = tuple(shape)
    return out


def load_inputs(
    doc: Document, inputs: InputSource | Mapping[str, InputSource], pre: Preprocess
) -> dict[str, Array]:
    """Arrays for every input blob: from arrays, ``.npy`` files or images; batch axis added
    to a single item; every axis but the batch must match the declared shape."""
    declared = input_shapes(doc)
    if not isinstance(inputs, Mapping):
        if len(declared) != 1:
            names = ", ".join(declared) or "none"
            raise MissingArgumentError(
                f"the net has several input blobs ({names}): name each one", {"inputs": None}
            )
        inputs = {next(iter(declared)): inputs}
    missing = sorted(set(declared) - set(inputs))
    unknown = sorted(set(inputs) - set(declared))
    if unknown:
        raise InputError(
            f"no input blob named {', '.join(unknown)}; the net's inputs: {', '.join(declared)}"
        )
    if missing:
        raise InputError(f"no data given for input blob {', '.join(missing)}")
    arrays = {}
    for name, source in inputs.items():
        shape = declared[name]
        if isinstance(source, str | os.PathLike):
            array = load_input(source, shape, pre)
            where = Location(str(source))
        else:
            array = np.asarray(source, dtype=np.float32)
            where = None
        if array.ndim == len(shape) - 1:
            array = array[None]
        if array.ndim != len(shape) or tuple(array.shape[1:]) != tuple(shape[1:]):
            raise InputError(
                f"input '{name}' has shape {list(array.shape)}; the net expects "
                f"N x {' x '.join(map(str, shape[1:]))}"
                if len(shape) > 1
                else f"input '{name}' has shape {list(array.shape)}; the net expects a vector",
                where,
            )
        arrays[name] = array
    return arrays


def gradients(
    net: NetSource,
    *,
    weights: str | os.PathLike[str] | None,
    inputs: InputSource | Mapping[str, InputSource],
    target: str | None = None,
    head: LossHead | None = None,
    loss: str | None = None,
    preprocess: Preprocess | None = None,
    after_inplace: bool = False,
    channels: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    session: Session | None = None,
) -> Gradients:
    """One forward/backward of ``net`` rewritten for ``head`` on ``target`` (or for its own
    ``loss`` blob), in a Caffe worker; every learnable blob's gradient by layer and role.

    ``inputs`` is one array or file for a net with one input blob, else a mapping by blob
    name; images are preprocessed by ``preprocess``.  Weights are checked to fit first.
    ``session``: a warm :class:`protoedit.caffe.Session` to run in (no Caffe import).
    """
    doc, report = prepare(
        net, target=target, head=head, loss=loss, after_inplace=after_inplace, channels=channels
    )
    arrays = load_inputs(doc, inputs, preprocess or Preprocess())
    text, path = doc.dumps(), doc.path
    with CaffeSession(text, weights=weights, net_path=path, timeout=timeout, session=session) as s:
        result = s.run(arrays, backward=True, param_norms=True)
        warnings = [
            f"layer '{name}' is not in the weights file: its parameters keep their fillers"
            for name in s.info["missing"]
        ]
    if weights is None:
        warnings.append("no weights given: every parameter has its filler's initial value")
    return Gradients(
        params=result["params"],
        inputs=result["inputs"],
        loss=result["loss"],
        param_norms=result["param_norms"],
        warnings=warnings,
        report=report,
    )
