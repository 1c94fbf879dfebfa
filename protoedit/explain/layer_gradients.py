"""Gradients by layer name: ``d loss / d param`` for every learnable blob, ``d loss / d input``,
and (``blobs=``) ``d loss / d blob`` for any blob of the data stream.

The loss is either an activation head on a target (the ``aux`` rewrite) or a loss the net
already computes (``loss=BLOB``); either way :func:`~protoedit.rewrites.backward.backward_net`
prepares the net, in memory.  :class:`LayerGradients` holds the rewritten net and its Caffe
worker, so that many inputs cost one net load; :func:`gradients` is one call of it.  A solver
file given as the net stands for its training net, run in phase TRAIN (as ``caffe.SGDSolver``
runs it).  A blob written in place has two gradients, keyed ``NAME/before`` and
``NAME/after`` its in-place layers (:mod:`protoedit.explain.backward_steps`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from protoedit.document import Document
from protoedit.errors import InputError
from protoedit.explain.explainer import Explainer, SessionSource, WeightsSource
from protoedit.explain.inputs import (
    InputSource,
    NetSource,
    input_shapes,
    is_solver,
    load_inputs,
    private_copy,
    solver_train_net,
)
from protoedit.explain.objectives import Unit, as_head
from protoedit.explain.preprocess import Preprocess
from protoedit.explain.session import DEFAULT_TIMEOUT
from protoedit.net.layers import param_key
from protoedit.net.view import NetView
from protoedit.rewrites import LossHead, aux
from protoedit.rewrites.backward import Deploy, backward_net
from protoedit.rewrites.report import RewriteReport

Array = npt.NDArray[np.float32]
#: Key prefix of input gradients in :meth:`Gradients.flat` (no parameter role is a blob name).
INPUT_PREFIX = "input/"
#: Key prefix of the data stream's gradients in :meth:`Gradients.flat`.
BLOB_PREFIX = "blob/"
#: ``blobs=`` value that asks for every blob of the net.
ALL_BLOBS = "all"


@dataclass
class Gradients(Mapping[str, dict[str, Array]]):
    """``d loss / d param`` by layer name then role; ``inputs`` by input blob name;
    ``blobs`` by blob name (``NAME/before`` and ``NAME/after`` for one written in place)."""

    params: dict[str, dict[str, Array]]
    inputs: dict[str, Array]
    loss: float
    blobs: dict[str, Array] = field(default_factory=dict)
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
        """One array per key: ``LAYER/ROLE`` for parameters, ``input/BLOB`` for inputs,
        ``blob/NAME`` (``blob/NAME/before``, ``blob/NAME/after``) for the data stream."""
        out = {
            param_key(layer, role): g
            for layer, roles in self.params.items()
            for role, g in roles.items()
        }
        out.update({INPUT_PREFIX + blob: g for blob, g in self.inputs.items()})
        out.update({BLOB_PREFIX + key: g for key, g in self.blobs.items()})
        return out

    def save(self, path: str | os.PathLike[str]) -> list[Path]:
        """Write :meth:`flat` as an ``.npz``; the path written, in a list as every
        ``save`` gives."""
        with open(path, "wb") as handle:
            np.savez(handle, **self.flat())  # type: ignore[arg-type]
        return [Path(path)]

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
        for key, grad in self.blobs.items():
            name, _, when = key.partition("/")
            norm = float(np.linalg.norm(grad.astype(np.float64)))
            role = f"blob, {when} in-place" if when else "blob"
            rows.append((name, role, tuple(grad.shape), norm, None))
        return rows


def loss_net(doc: Document, loss: str, phase: str = "TEST") -> RewriteReport:
    """Make ``doc`` compute only the net's own loss ``loss`` (a blob), with input gradients.

    The net is filtered for ``phase`` (the phase the worker runs it in), must be fed through
    Input layers (data layers read files a gradient call has no use for), and may contain
    loss layers with labels but nothing else that cannot run backward.
    """
    return backward_net(doc, loss, own_loss=True, deploy=Deploy(phase=phase))


def blob_names(doc: Document) -> list[str]:
    """Every blob the net's layers write, in order (what ``blobs="all"`` means)."""
    names: dict[str, None] = {}
    for info in NetView(doc).layers:
        for version in info.writes:
            names[version.blob] = None
    return list(names)


def net_and_phase(net: NetSource) -> tuple[Document, str]:
    """A private copy of ``net`` and the phase it runs in: a solver's training net in
    TRAIN, any other net in TEST."""
    doc = private_copy(net)
    if is_solver(doc):
        return solver_train_net(doc), "TRAIN"
    return doc, "TEST"


def prepare(
    net: NetSource,
    *,
    target: str | None = None,
    head: LossHead | None = None,
    loss: str | None = None,
    after_inplace: bool = False,
    target_channels: int | None = None,
    phase: str = "TEST",
) -> tuple[Document, RewriteReport]:
    """The rewritten net whose loss is ``head`` on ``target``, or the net's own ``loss``,
    in ``phase``."""
    if (target is None) == (loss is None):
        raise InputError("give a target (with a loss head) or a loss blob, exactly one")
    doc = private_copy(net)
    if loss is not None:
        for name, value in (("head", head), ("target_channels", target_channels)):
            if value is not None:
                raise InputError(f"{name} applies to a target, not to the net's own loss")
        return doc, loss_net(doc, loss, phase)
    assert target is not None
    report = aux(
        doc,
        target,
        head,
        after_inplace=after_inplace,
        target_channels=target_channels,
        phase=phase,
    )
    return doc, report


class LayerGradients(Explainer):
    """``net`` rewritten once for ``head`` on ``target`` (or for its own ``loss`` blob) and
    the Caffe worker that runs it; :meth:`compute` gives every learnable blob's gradient for
    one set of inputs, and may be called again with others.  ``blobs``: names of blobs whose
    gradients to report too, or ``"all"``."""

    def __init__(
        self,
        net: NetSource,
        *,
        weights: WeightsSource,
        target: str | None = None,
        head: LossHead | Unit | None = None,
        loss: str | None = None,
        after_inplace: bool = False,
        target_channels: int | None = None,
        preprocess: Preprocess | None = None,
        blobs: Sequence[str] | str = (),
        timeout: float = DEFAULT_TIMEOUT,
        session: SessionSource | None = None,
        allow_python_layers: bool = False,
        strict_weights: bool = False,
    ) -> None:
        source, phase = net_and_phase(net)
        wanted = [blobs] if isinstance(blobs, str) else list(blobs)
        if ALL_BLOBS in wanted:
            if len(wanted) > 1:
                raise InputError(f"blobs: {ALL_BLOBS!r} stands alone, not among other names")
            wanted = blob_names(source)
        doc, report = prepare(
            source,
            target=target,
            head=as_head(head) if head is not None else None,
            loss=loss,
            after_inplace=after_inplace,
            target_channels=target_channels,
            phase=phase,
        )
        kept = set(blob_names(doc)) | set(input_shapes(doc))
        gone = [name for name in wanted if name not in kept]
        if gone and not isinstance(blobs, str):
            raise InputError(
                f"no blob {', '.join(map(repr, gone))} in the net made for the loss (a blob "
                "the loss does not depend on is dropped with its layer)"
            )
        self.blob_names = [name for name in wanted if name in kept]
        super().__init__(
            doc,
            report,
            weights=weights,
            timeout=timeout,
            session=session,
            allow_python_layers=allow_python_layers,
            phase=phase,
            strict_weights=strict_weights,
        )
        self.preprocess = preprocess or Preprocess()

    def compute(self, inputs: InputSource | Mapping[str, InputSource]) -> Gradients:
        """One forward/backward on ``inputs``: one array or file for a net with one input
        blob, else a mapping by blob name (see :mod:`protoedit.explain.inputs`)."""
        arrays = load_inputs(self.inputs, inputs, self.preprocess)
        result = self.session().run(arrays, backward=True, param_norms=True, diffs=self.blob_names)
        return Gradients(
            params=result["params"],
            inputs=result["inputs"],
            loss=result["loss"],
            blobs=result.get("diffs", {}),
            param_norms=result["param_norms"],
            warnings=self.warnings(),
            report=self.report,
        )


def gradients(
    net: NetSource,
    *,
    weights: WeightsSource,
    inputs: InputSource | Mapping[str, InputSource],
    target: str | None = None,
    head: LossHead | Unit | None = None,
    loss: str | None = None,
    preprocess: Preprocess | None = None,
    after_inplace: bool = False,
    target_channels: int | None = None,
    blobs: Sequence[str] | str = (),
    timeout: float = DEFAULT_TIMEOUT,
    session: SessionSource | None = None,
    allow_python_layers: bool = False,
    strict_weights: bool = False,
) -> Gradients:
    """One forward/backward of ``net`` rewritten for ``head`` on ``target`` (or for its own
    ``loss`` blob), in a Caffe worker: :meth:`LayerGradients.compute` once.  Weights are
    checked to fit first; ``blobs`` (names or ``"all"``) adds the data stream's gradients."""
    with LayerGradients(
        net,
        weights=weights,
        target=target,
        head=head,
        loss=loss,
        after_inplace=after_inplace,
        target_channels=target_channels,
        preprocess=preprocess,
        blobs=blobs,
        timeout=timeout,
        session=session,
        allow_python_layers=allow_python_layers,
        strict_weights=strict_weights,
    ) as method:
        return method.compute(inputs)
