"""The small rewrites: ``force_backward`` and Caffe's phase/level/stage filtering."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

from protoedit.document import Document
from protoedit.errors import InputError, ProtoeditWarning
from protoedit.net.layers import is_data_layer
from protoedit.net.state import NetState, phases
from protoedit.net.view import LayerInfo, NetView, require_net
from protoedit.rewrites.cleanup import drop_layers
from protoedit.rewrites.report import RewriteReport
from protoedit.schema.binding import suggest
from protoedit.syntax.tree import Field

#: The rule blocks Caffe's FilterNet reads.
_RULES = ("include", "exclude")


def force_backward(doc: Document) -> RewriteReport:
    """Set ``force_backward: true`` (Caffe sends no gradient to input blobs otherwise).

    The line goes beside the other top-level scalars; in a file that has none it goes
    after the header comment block, not above it.
    """
    require_net(doc)
    report = RewriteReport()
    if doc.message.force_backward:
        return report
    first = doc.tree.fields[0] if doc.tree.fields else None
    doc.set("force_backward", True)
    fields = doc.tree.fields
    if first is not None and len(fields) > 1 and fields[1] is first:
        _move_header(fields[0], first)
    report.changed.append("force_backward: true")
    return report


def _move_header(new: Field, first: Field) -> None:
    """Move the comment block that opens the file from ``first`` to ``new`` (now above it).

    The header runs to the first blank line, or is the whole block when it runs straight
    into the first field (a licence with no gap).
    """
    lines = first.leading.splitlines(keepends=True)
    if not lines or not lines[0].lstrip().startswith("#"):
        return
    end = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
    header = [line for line in lines[:end] if line.endswith("\n")]
    if not header:
        return
    new.leading = "".join(header) + new.leading.lstrip(" \t")
    first.leading = "".join(lines[len(header) :])


def net_state(
    doc: Document, phase: str = "TEST", level: int = 0, stages: Sequence[str] = ()
) -> NetState:
    """The ``NetState`` to filter ``doc`` for, refusing what no Caffe state could mean.

    The phase is TRAIN or TEST.  A stage that no include/exclude rule of the net names is
    a state Caffe builds all the same (a ``not_stage`` rule then includes its layer), but
    more often a misspelt stage: it gives an :class:`UnknownStageWarning`.
    """
    if isinstance(stages, str):
        raise InputError(f"stages must be a sequence of names, not one string: ({stages!r},)")
    if not isinstance(phase, str) or phase.upper() not in phases():
        raise InputError(f"unknown phase {phase!r}: Caffe's phases are TRAIN and TEST")
    if not isinstance(level, int):
        raise InputError(f"the level must be an integer, not {level!r}")
    known = rule_stages(NetView(doc).layers) if stages else set()
    for stage in stages:
        if stage not in known:
            warnings.warn(UnknownStageWarning(stage, known), stacklevel=3)
    return NetState(phase.upper(), level, frozenset(stages))


class UnknownStageWarning(ProtoeditWarning):
    """A stage that no include or exclude rule of the net names (``stage``; ``named``: the
    stages the rules do name): the net is built for it all the same."""

    def __init__(self, stage: str, named: Iterable[str]) -> None:
        self.stage = stage
        self.named = sorted(named)
        which = (
            "the net's rules name " + ", ".join(f"'{s}'" for s in self.named)
            if self.named
            else "the net has no stage rules"
        )
        super().__init__(
            f"no include or exclude rule names stage '{stage}' ({which})"
            + suggest(stage, self.named)
            + "; going on: Caffe builds the net for that state all the same"
        )


def rule_stages(layers: Iterable[LayerInfo]) -> set[str]:
    """Every stage that an include or exclude rule of these layers names."""
    return {
        stage
        for info in layers
        for rule in (*info.param.include, *info.param.exclude)
        for stage in (*rule.stage, *rule.not_stage)
    }


def describe_state(state: NetState) -> str:
    """``phase TEST, level 1, stages a, b`` (only what is set)."""
    text = f"phase {state.phase}"
    if state.level:
        text += f", level {state.level}"
    if state.stages:
        text += ", stages " + ", ".join(sorted(state.stages))
    return text


def stages_that_include(doc: Document, indices: set[int], state: NetState) -> list[str]:
    """Stages which, added to ``state``, bring in at least one of the layers ``indices``
    (from their include rules), sorted; what to suggest when a state leaves them out."""
    view = NetView(doc)
    found: set[str] = set()
    for info in view.layers:
        if info.index not in indices:
            continue
        for rule in info.param.include:
            wanted = set(rule.stage) - state.stages
            if len(wanted) != 1:
                continue
            trial = NetState(state.phase, state.level, state.stages | wanted)
            if info.index in {i.index for i in NetView(doc, trial).layers}:
                found |= wanted
    return sorted(found)


def filter_net(
    doc: Document, phase: str = "TEST", level: int = 0, stages: Sequence[str] = ()
) -> RewriteReport:
    """Keep the layers Caffe's ``FilterNet`` keeps for this state; remove the others.

    The result stands alone: the include/exclude rules of the kept layers (all met by this
    state) are removed too, so the file is the net of this state whatever state loads it.
    """
    view = NetView.editable(doc)
    report = RewriteReport(changed=list(view.normalised))
    state = net_state(doc, phase, level, stages)
    kept = {info.index for info in NetView(doc, state).layers}
    why = f"not in {describe_state(state)}"
    gone = {info.index: why for info in view.layers if info.index not in kept}
    data = {info.index for info in view.layers if is_data_layer(info.param)}
    no_data = bool(data) and data <= set(gone)
    hint = stages_that_include(doc, data, state) if no_data else []
    ruled: list[str] = []
    for info in view.layers:
        if info.index in kept and info.block is not None:
            rules = [f for f in info.block.fields if f.name.text in _RULES]
            for rule in rules:
                doc.remove(info.block, rule)
            ruled += [info.name] if rules else []
    drop_layers(doc, view, gone, report)
    if ruled:
        names = ", ".join(f"'{name}'" for name in ruled[:3])
        more = f" and {len(ruled) - 3} more" if len(ruled) > 3 else ""
        report.changed.append(
            f"include/exclude rules removed from layer{'s' if len(ruled) > 1 else ''} "
            f"{names}{more} (met by {describe_state(state)}): the file is that state's net"
        )
    if no_data:
        report.flagged.append(
            f"no data layer is left for {describe_state(state)}"
            + (f" (they need stage {' or '.join(repr(s) for s in hint)})" if hint else "")
        )
    return report
