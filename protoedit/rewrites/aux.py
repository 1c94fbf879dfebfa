"""``aux``: the whole recipe that turns a model into an auxiliary net for one unit.

Upgrade a legacy file, turn a train/val net into its deploy form (or just filter a net
without data layers for the state), refuse a target that depends on a layer without
backward, ``force_backward``, truncate at the target, add the loss head.  Each step
checks its result, so a net Caffe would not load is an error, never the output.
"""

from __future__ import annotations

from collections.abc import Sequence

from protoedit.document import Document
from protoedit.errors import InputError, MissingArgumentError
from protoedit.net.layers import PYTHON, is_a, is_data_layer, no_backward
from protoedit.net.view import BlobVersion, NetView
from protoedit.rewrites.add_loss import LossHead, add_loss
from protoedit.rewrites.basic import filter_net, force_backward
from protoedit.rewrites.check import check_result
from protoedit.rewrites.report import RewriteReport
from protoedit.rewrites.to_deploy import deploy_net
from protoedit.rewrites.truncate import target_value, truncate
from protoedit.rewrites.upgrade import needs_upgrade, upgrade

__all__ = ["aux"]


def aux(
    doc: Document,
    target: str,
    head: LossHead,
    after_inplace: bool = False,
    channels: int | None = None,
    shape: Sequence[int] | None = None,
    input_channels: int | None = None,
    *,
    phase: str = "TEST",
    level: int = 0,
    stages: Sequence[str] = (),
    batch: int | None = None,
) -> RewriteReport:
    """Make ``doc`` the auxiliary net whose loss is ``head`` measured on ``target``.

    ``channels`` is the target's channel count, for when the layers do not tell;
    ``shape``, ``input_channels`` and ``batch`` serve the deploy step when the net has data
    layers (they are refused for a net without any); ``phase``, ``level`` and ``stages``
    pick the state the net is built for.
    """
    report = RewriteReport()
    if needs_upgrade(doc):
        report.extend(upgrade(doc))
    before = NetView.editable(doc)
    report.changed += before.normalised
    if any(is_data_layer(info.param) for info in before.layers):
        try:
            report.extend(
                deploy_net(
                    doc, phase, shape, input_channels, level=level, stages=stages, batch=batch
                )
            )
        except MissingArgumentError as exc:
            raise exc.renamed({"channels": "input_channels"}) from None
    else:
        named = {"shape": shape, "input_channels": input_channels, "batch": batch}
        given = [name for name, value in named.items() if value is not None]
        if given:
            raise InputError(
                f"{' and '.join(given)} given, but the net has no data layer to replace: its "
                "inputs already have their shapes"
            )
        report.extend(filter_net(doc, phase, level, stages))
    view = NetView(doc)
    try:
        version = target_value(view, target, after_inplace)
    except InputError as exc:
        raise _dropped(before, target, report) or exc from None
    needed = view.ancestors([version])
    for info in view.layers:
        if info.index in needed and no_backward(info.type):
            raise InputError(
                f"layer '{info.name}' ({info.type}) cannot run backward, and the target "
                "depends on it",
                doc.location(info.pos),
            )
        if info.index in needed and is_a(info.type, PYTHON):
            report.flagged.append(f"layer '{info.name}' is a Python layer: it runs user code")
    report.extend(force_backward(doc))
    report.extend(truncate(doc, target, after_inplace))
    report.extend(add_loss(doc, target, head, after_inplace, channels))
    check_result(doc, "aux")  # the input's problems too: an aux net is meant to run
    return report


def _dropped(before: NetView, target: str, report: RewriteReport) -> InputError | None:
    """Why a target that the input has is gone: the layer that wrote it was dropped."""
    try:
        version: BlobVersion = before.resolve(target)
    except InputError:
        return None
    writer = before.by_index.get(version.producer)
    if writer is None or writer.name not in report.removed:
        return None
    why = report.removed[writer.name]
    name = target.rpartition(":")[2]
    what = (
        f"layer '{writer.name}'"
        if name == writer.name
        else f"'{name}' is written by layer '{writer.name}', which"
    )
    return InputError(
        f"{what} was dropped while making the net for the target ({why}); an aux net "
        "measures a value that the deploy net computes"
    )
