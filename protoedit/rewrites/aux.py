"""``aux``: the whole recipe that turns a model into an auxiliary net for one unit.

Upgrade a legacy file, turn a train/val net into its deploy form (or just filter a net
without data layers for the state), refuse a target that depends on a layer without
backward, ``force_backward``, truncate at the target, add the loss head.  Each step
checks its result, so a net Caffe would not load is an error, never the output.
"""

from __future__ import annotations

from collections.abc import Sequence

from protoedit.document import Document
from protoedit.rewrites.add_loss import LossHead, add_loss
from protoedit.rewrites.backward import Deploy, backward_net
from protoedit.rewrites.check import check_result
from protoedit.rewrites.report import RewriteReport

__all__ = ["aux"]


def aux(
    doc: Document,
    target: str,
    head: LossHead | None = None,
    *,
    after_inplace: bool = False,
    target_channels: int | None = None,
    shape: Sequence[int] | None = None,
    input_channels: int | None = None,
    phase: str = "TEST",
    level: int = 0,
    stages: Sequence[str] = (),
    batch: int | None = None,
) -> RewriteReport:
    """Make ``doc`` the auxiliary net whose loss is ``head`` (default: channel 0's mean)
    measured on ``target``.

    ``target_channels`` is the target's channel count, for when the layers do not tell;
    ``shape``, ``input_channels`` and ``batch`` serve the deploy step when the net has data
    layers (they are refused for a net without any); ``phase``, ``level`` and ``stages``
    pick the state the net is built for.
    """
    deploy = Deploy(phase, level, stages, shape, input_channels, batch)
    report = backward_net(doc, target, after_inplace=after_inplace, deploy=deploy)
    report.extend(
        add_loss(
            doc,
            target,
            head or LossHead(),
            after_inplace=after_inplace,
            target_channels=target_channels,
        )
    )
    check_result(doc, "aux")  # the input's problems too: an aux net is meant to run
    return report
