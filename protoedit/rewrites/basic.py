"""The small rewrites: ``force_backward`` and Caffe's phase/level/stage filtering."""

from __future__ import annotations

from protoedit.document import Document
from protoedit.lint import NetState, layer_included
from protoedit.net.view import NetView
from protoedit.rewrites.report import RewriteReport
from protoedit.syntax.edit import remove_field


def force_backward(doc: Document) -> RewriteReport:
    """Set ``force_backward: true`` (Caffe sends no gradient to input blobs otherwise)."""
    report = RewriteReport()
    if doc.message.force_backward:
        return report
    doc.set("force_backward", True)
    report.changed.append("force_backward: true")
    return report


def filter_net(
    doc: Document, phase: str = "TEST", level: int = 0, stages: tuple[str, ...] = ()
) -> RewriteReport:
    """Keep the layers Caffe's ``FilterNet`` keeps for this state; remove the others."""
    state = NetState(phase.upper(), level, frozenset(stages))
    view = NetView(doc)
    report = RewriteReport(changed=list(view.normalised))
    for info in reversed(view.layers):
        if not layer_included(info.param, state):
            remove_field(doc.tree, info.node)
            report.dropped.append(f"layer '{info.name}' ({info.type}): not in {_describe(state)}")
    report.dropped.reverse()
    if report.dropped:
        doc.changed()
    return report


def _describe(state: NetState) -> str:
    text = f"phase {state.phase}"
    if state.level:
        text += f", level {state.level}"
    if state.stages:
        text += ", stages " + ", ".join(sorted(state.stages))
    return text
