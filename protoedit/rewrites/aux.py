"""``aux``: the whole recipe that turns a model into an auxiliary net for one unit.

Upgrade a legacy file, turn a train/val net into its deploy form (or just filter for the
TEST phase), refuse a target that depends on a layer without backward, ``force_backward``,
truncate at the target, add the loss head.
"""

from __future__ import annotations

from protoedit.document import Document
from protoedit.errors import InputError
from protoedit.net.view import NetView
from protoedit.rewrites.add_loss import LossHead, add_loss
from protoedit.rewrites.basic import filter_net, force_backward
from protoedit.rewrites.report import RewriteReport
from protoedit.rewrites.truncate import target_value, truncate
from protoedit.rewrites.upgrade import needs_upgrade, upgrade

#: Layers that read files or databases: a deploy net has an Input layer instead.
DATA_LAYERS = frozenset(
    ["Data", "ImageData", "HDF5Data", "MemoryData", "WindowData", "VideoData", "AnnotatedData"]
)
#: Layers that abort or need labels in backward; harmless to drop when not an ancestor.
NO_BACKWARD = frozenset(
    [
        "Accuracy",
        "ArgMax",
        "Threshold",
        "Filter",
        "BatchReindex",
        "Embed",
        "SoftmaxWithLoss",
        "EuclideanLoss",
        "SigmoidCrossEntropyLoss",
        "InfogainLoss",
        "HingeLoss",
        "MultinomialLogisticLoss",
        "ContrastiveLoss",
        "Silence",
        "HDF5Output",
    ]
)


def aux(
    doc: Document,
    target: str,
    head: LossHead,
    after_inplace: bool = False,
    channels: int | None = None,
    shape: list[int] | None = None,
    input_channels: int | None = None,
) -> RewriteReport:
    """Make ``doc`` the auxiliary net whose loss is ``head`` measured on ``target``.

    ``shape`` / ``input_channels`` serve ``to_deploy`` when the net has data layers.
    """
    report = RewriteReport()
    if needs_upgrade(doc):
        report.extend(upgrade(doc))
    view = NetView(doc)
    report.changed += view.normalised
    if any(info.type in DATA_LAYERS for info in view.layers):
        from protoedit.rewrites.to_deploy import to_deploy

        report.extend(to_deploy(doc, "TEST", shape, input_channels))
    else:
        report.extend(filter_net(doc, "TEST"))
    view = NetView(doc)
    version = target_value(view, target, after_inplace)
    needed = view.ancestors([version])
    for info in view.layers:
        if info.index in needed and info.type in NO_BACKWARD:
            raise InputError(
                f"layer '{info.name}' ({info.type}) cannot run backward, and the target "
                "depends on it",
                doc.location(info.node.pos),
            )
        if info.index in needed and info.type == "Python":
            report.flagged.append(f"layer '{info.name}' is a Python layer: it runs user code")
    report.extend(force_backward(doc))
    report.extend(truncate(doc, target, after_inplace))
    report.extend(add_loss(doc, target, head, after_inplace, channels))
    return report
