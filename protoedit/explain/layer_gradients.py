"""Gradients by layer name: ``d loss / d param`` for every learnable blob, ``d loss / d input``.

The loss is either an activation head on a target (the ``aux`` rewrite) or a loss the net
already computes (``loss=BLOB``); either way :func:`~protoedit.rewrites.backward.backward_net`
prepares the net, in memory.  :class:`LayerGradients` holds the rewritten net and its Caffe
worker, so that many inputs cost one net load; :func:`gradients` is one call of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from protoedit.document import Document
from protoedit.errors import InputError
from protoedit.explain.explainer import Explainer, SessionSource, WeightsSource
from protoedit.explain.inputs import InputSource, NetSource, load_inputs, private_copy
from protoedit.explain.objectives import Unit, as_head
from protoedit.explain.preprocess import Preprocess
from protoedit.explain.session import DEFAULT_TIMEOUT
from protoedit.net.layers import param_key
from protoedit.rewrites import LossHead, aux
from protoedit.rewrites.backward import backward_net
from protoedit.rewrites.report import RewriteReport

Array = npt.NDArray[np.float32]
#: Key prefix of input gradients in :meth:`Gradients.flat` (no parameter role is a blob name).
INPUT_PREFIX = "input/"


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
        return rows


def loss_net(doc: Document, loss: str) -> RewriteReport:
    """Make ``doc`` compute only the net's own loss ``loss`` (a blob), with input gradients.

    The net is filtered for the TEST phase (the phase the worker runs), must be fed through
    Input layers (data layers read files a gradient call has no use for), and may contain
    loss layers with labels but nothing else that cannot run backward.
    """
    return backward_net(doc, loss, own_loss=True)


def prepare(
    net: NetSource,
    *,
    target: str | None = None,
    head: LossHead | None = None,
    loss: str | None = None,
    after_inplace: bool = False,
    target_channels: int | None = None,
) -> tuple[Document, RewriteReport]:
    """The rewritten net whose loss is ``head`` on ``target``, or the net's own ``loss``."""
    if (target is None) == (loss is None):
        raise InputError("give a target (with a loss head) or a loss blob, exactly one")
    doc = private_copy(net)
    if loss is not None:
        for name, value in (("head", head), ("target_channels", target_channels)):
            if value is not None:
                raise InputError(f"{name} applies to a target, not to the net's own loss")
        return doc, loss_net(doc, loss)
    assert target is not None
    report = aux(doc, target, head, after_inplace=after_inplace, target_channels=target_channels)
    return doc, report


class LayerGradients(Explainer):
    """``net`` rewritten once for ``head`` on ``target`` (or for its own ``loss`` blob) and
    the Caffe worker that runs it; :meth:`compute` gives every learnable blob's gradient for
    one set of inputs, and may be called again with others."""

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
        timeout: float = DEFAULT_TIMEOUT,
        session: SessionSource | None = None,
        allow_python_layers: bool = False,
        strict_weights: bool = False,
    ) -> None:
        doc, report = prepare(
            net,
            target=target,
            head=as_head(head) if head is not None else None,
            loss=loss,
            after_inplace=after_inplace,
            target_channels=target_channels,
        )
        super().__init__(
            doc,
            report,
            weights=weights,
            timeout=timeout,
            session=session,
            allow_python_layers=allow_python_layers,
            strict_weights=strict_weights,
        )
        self.preprocess = preprocess or Preprocess()

    def compute(self, inputs: InputSource | Mapping[str, InputSource]) -> Gradients:
        """One forward/backward on ``inputs``: one array or file for a net with one input
        blob, else a mapping by blob name (see :mod:`protoedit.explain.inputs`)."""
        arrays = load_inputs(self.inputs, inputs, self.preprocess)
        result = self.session().run(arrays, backward=True, param_norms=True)
        return Gradients(
            params=result["params"],
            inputs=result["inputs"],
            loss=result["loss"],
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
    timeout: float = DEFAULT_TIMEOUT,
    session: SessionSource | None = None,
    allow_python_layers: bool = False,
    strict_weights: bool = False,
) -> Gradients:
    """One forward/backward of ``net`` rewritten for ``head`` on ``target`` (or for its own
    ``loss`` blob), in a Caffe worker: :meth:`LayerGradients.compute` once.  Weights are
    checked to fit first."""
    with LayerGradients(
        net,
        weights=weights,
        target=target,
        head=head,
        loss=loss,
        after_inplace=after_inplace,
        target_channels=target_channels,
        preprocess=preprocess,
        timeout=timeout,
        session=session,
        allow_python_layers=allow_python_layers,
        strict_weights=strict_weights,
    ) as method:
        return method.compute(inputs)
