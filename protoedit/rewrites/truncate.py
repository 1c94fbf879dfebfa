"""``truncate``: keep exactly the layers that compute a target value, drop the rest.

The kept set is the target's ancestry in the data-flow graph, so Inception concats and
ResNet sums are kept whole.  In a net with include/exclude rules the ancestry is taken in
every state (each phase, alone and with each stage), so a train/test net keeps the data
layer of each phase.  For a target followed by in-place layers (BatchNorm, Scale, ReLU on
the same blob), ``after_inplace`` keeps them and targets the value they leave.
"""

from __future__ import annotations

from protoedit.document import Document
from protoedit.errors import InputError
from protoedit.net.state import NetState, phases
from protoedit.net.view import BlobVersion, NetView
from protoedit.rewrites.basic import rule_stages
from protoedit.rewrites.check import check_result, lint_errors
from protoedit.rewrites.cleanup import drop_layers
from protoedit.rewrites.report import RewriteReport


def target_value(view: NetView, target: str, after_inplace: bool) -> BlobVersion:
    """The value ``target`` names, past its in-place chain when ``after_inplace``."""
    version = view.resolve(target)
    if after_inplace:
        chain = view.inplace_chain(version)
        if chain:
            last = chain[-1]
            version = next(w for w in last.writes if w.blob == version.blob)
    return version


def _states(view: NetView) -> list[NetState | None]:
    """``[None]`` (no filtering) for a net without rules, else every phase x stage state."""
    if not any(len(i.param.include) or len(i.param.exclude) for i in view.layers):
        return [None]
    stages = [None, *sorted(rule_stages(view.layers))]
    return [
        NetState(phase, 0, frozenset([stage]) if stage else frozenset())
        for phase in phases()
        for stage in stages
    ]


def needed_layers(doc: Document, target: str, after_inplace: bool) -> set[int]:
    """Indices of the layers the target depends on, in any state the net can be built in."""
    view = NetView(doc)
    keep: set[int] = set()
    resolved = False
    for state in _states(view):
        in_state = view if state is None else NetView(doc, state)
        try:
            version = target_value(in_state, target, after_inplace)
        except InputError:
            continue
        resolved = True
        keep |= in_state.ancestors([version])
    if not resolved:
        target_value(view, target, after_inplace)  # raises the explanation
    return keep


def truncate(doc: Document, target: str, *, after_inplace: bool = False) -> RewriteReport:
    """Remove every layer the target value does not depend on."""
    view = NetView.editable(doc)
    version = target_value(view, target, after_inplace)
    keep = needed_layers(doc, target, after_inplace)
    baseline = lint_errors(doc)
    report = RewriteReport(changed=list(view.normalised))
    gone = {info.index: "not needed for the target" for info in view.layers}
    drop_layers(doc, view, {i: why for i, why in gone.items() if i not in keep}, report)
    producer = (
        view.by_index[version.producer].name if version.producer in view.by_index else "input"
    )
    report.changed.append(
        f"truncated at '{version.blob}' as written by '{producer}': kept {len(keep)} of "
        f"{len(view.layers)} layers"
    )
    check_result(doc, "truncate", baseline=baseline)
    return report
