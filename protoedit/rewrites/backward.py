"""``backward_net``: a net made ready for a backward pass to one target, in place.

The one place that prepares a backward to a target (``aux``, the gradients of ``explain``
and activation maximisation all start here): upgrade a legacy file; put the net in the
state it runs in (a train/val net becomes its deploy form, a net without data layers is
filtered, a net measured by its own loss keeps its losses); find the target value (before
or after its in-place layers); refuse a target that depends on a layer that aborts in
backward; ``force_backward``; and truncate to the target's ancestors, which drops every
other layer, those that would abort in backward included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from protoedit.document import Document
from protoedit.errors import InputError
from protoedit.net.layers import DATA, PYTHON, is_a, is_data_layer, is_loss, no_backward
from protoedit.net.view import BlobVersion, NetView
from protoedit.rewrites.basic import filter_net, force_backward
from protoedit.rewrites.report import RewriteReport
from protoedit.rewrites.to_deploy import deploy_net
from protoedit.rewrites.truncate import target_value, truncate
from protoedit.rewrites.upgrade import needs_upgrade, upgrade

__all__ = ["Deploy", "backward_net"]


@dataclass(frozen=True)
class Deploy:
    """How a net with data layers becomes the deploy net a backward pass runs: the state
    (``phase``, ``level``, ``stages``) and the input's ``shape``, ``input_channels`` and
    ``batch`` when the data layer does not tell them."""

    phase: str = "TEST"
    level: int = 0
    stages: Sequence[str] = ()
    shape: Sequence[int] | None = None
    input_channels: int | None = None
    batch: int | None = None


def backward_net(
    doc: Document,
    target: str,
    *,
    after_inplace: bool = False,
    deploy: Deploy | None = None,
    own_loss: bool = False,
) -> RewriteReport:
    """Make ``doc`` the net whose backward pass runs from ``target`` to its inputs.

    ``own_loss``: the target is a loss the net computes; its loss layers stay, and the net
    must then be fed through Input layers (a data layer would read files).  Otherwise data
    layers are replaced as :func:`~protoedit.rewrites.to_deploy.to_deploy` does, by
    ``deploy``.  A layer on the target's path that aborts in backward is refused, with its
    location; a Python layer on it is flagged.  The caller adds the head.
    """
    deploy = deploy or Deploy()
    report = RewriteReport()
    if needs_upgrade(doc):
        report.extend(upgrade(doc))
    before = NetView.editable(doc)
    report.changed += before.normalised
    if not own_loss and any(is_data_layer(info.param) for info in before.layers):
        report.extend(
            deploy_net(
                doc,
                deploy.phase,
                shape=deploy.shape,
                input_channels=deploy.input_channels,
                level=deploy.level,
                stages=deploy.stages,
                batch=deploy.batch,
            )
        )
    else:
        named = {
            "shape": deploy.shape,
            "input_channels": deploy.input_channels,
            "batch": deploy.batch,
        }
        given = [name for name, value in named.items() if value is not None]
        if given:
            raise InputError(
                f"{' and '.join(given)} given, but the net has no data layer to replace: its "
                "inputs already have their shapes"
            )
        report.extend(filter_net(doc, deploy.phase, deploy.level, deploy.stages))
    view = NetView(doc)
    try:
        version = target_value(view, target, after_inplace)
    except InputError as exc:
        raise _dropped(before, target, report) or exc from None
    if own_loss:
        producer = view.by_index.get(version.producer)
        if producer is None or not (is_loss(producer.type) or len(producer.param.loss_weight)):
            raise InputError(f"'{target}' is not a loss: no loss layer or loss_weight produces it")
    _check_path(doc, view, version, own_loss, report)
    report.extend(force_backward(doc))
    report.extend(truncate(doc, target, after_inplace=after_inplace))
    return report


def _check_path(
    doc: Document, view: NetView, version: BlobVersion, own_loss: bool, report: RewriteReport
) -> None:
    """Refuse a layer on the target's path that aborts in backward (or, for a net's own
    loss, that reads files); flag a Python layer on it."""
    what = "the loss" if own_loss else "the target"
    for index in sorted(view.ancestors([version])):
        info = view.by_index[index]
        if own_loss and is_a(info.type, DATA):
            raise InputError(
                f"layer '{info.name}' ({info.type}) reads its data from files; a gradient "
                "needs the data given: feed the net through Input layers",
                doc.location(info.pos),
            )
        if no_backward(info.type) and not (own_loss and is_loss(info.type)):
            raise InputError(
                f"layer '{info.name}' ({info.type}) cannot run backward, and {what} depends on it",
                doc.location(info.pos),
            )
        if is_a(info.type, PYTHON):
            report.flagged.append(f"layer '{info.name}' is a Python layer: it runs user code")


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
        f"{what} was dropped while making the net for the target ({why}); a backward net "
        "measures a value that the deploy net computes"
    )
