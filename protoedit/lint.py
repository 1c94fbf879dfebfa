"""``protoedit check``: syntax, schema and net lint findings, each with a code and a place.

Codes: ``E0xx`` syntax, ``E1xx``/``W1xx`` schema (see :mod:`protoedit.schema.binding`),
``E2xx``/``W2xx`` net structure.  Errors are what Caffe would refuse; warnings are legacy
but valid constructs (Caffe upgrades them on load) and style.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from protoedit.document import Document
from protoedit.net.shapes import LEGACY_HEADER
from protoedit.net.state import NetState, layer_included
from protoedit.schema.binding import Diagnostic, suggest
from protoedit.syntax.split import element_pos, elements
from protoedit.syntax.tree import Block, Field


def _state_problems(
    layers: Any, state: NetState, inputs: Any, legacy: bool
) -> Iterator[tuple[str, int, str]]:
    """(code, layer index, detail) for each problem of the net Caffe builds for ``state``."""
    available = set(inputs)
    names: set[str] = set()
    for index, layer in enumerate(layers):
        if not layer_included(layer, state):
            continue
        if layer.name in names and not legacy:
            yield ("W203", index, layer.name)
        names.add(layer.name)
        for nth, bottom in enumerate(layer.bottom):
            if bottom not in available:
                yield ("E202", index, f"{nth}:{bottom}")
        for nth, top in enumerate(layer.top):
            in_place = nth < len(layer.bottom) and layer.bottom[nth] == top
            if top in available and not in_place:
                yield ("E203", index, f"{nth}:{top}")
            available.add(top)


class _Places:
    """Source offsets of layers and their bottoms/tops, from the nodes binding linked to
    each message entry (:meth:`Document.elements`)."""

    def __init__(self, doc: Document, container: Any, field_name: str) -> None:
        self.doc = doc
        self.layers = doc.elements(container, field_name)

    def layer(self, index: int) -> int:
        return element_pos(*self.layers[index]) if index < len(self.layers) else 0

    def child(self, index: int, name: str, nth: int) -> int:
        block = self.layers[index][1] if index < len(self.layers) else None
        if not isinstance(block, Block):
            return self.layer(index)
        # Repeated fields (bottom, top) by their links; a singular one is its only field.
        named = self.doc.elements(block, name) or elements(block.fields, name)
        return element_pos(*named[nth]) if nth < len(named) else self.layer(index)


def findings(doc: Document, known_types: frozenset[str] | None) -> Iterator[Diagnostic]:
    """The lint findings of a net or solver document (nothing for other message types)."""
    if doc.message_type.endswith(".NetParameter"):
        yield from net_findings(doc, known_types)
    elif doc.message_type.endswith(".SolverParameter"):
        yield from solver_findings(doc, known_types)


#: SolverParameter fields that hold a whole net inline.
INLINE_NETS = ("net_param", "train_net_param", "test_net_param")


def inline_nets(doc: Document) -> list[tuple[str, Field, Block, Any]]:
    """(field name, field, block, NetParameter) of each net a solver holds inline."""
    solver = doc.message
    found = []
    for name in INLINE_NETS:
        value = getattr(solver, name)
        messages = list(value) if name == "test_net_param" else [value]
        for net, (field, block) in zip(messages, doc.elements(doc.tree, name), strict=False):
            if isinstance(block, Block):
                found.append((name, field, block, net))
    return found


def solver_findings(doc: Document, known_types: frozenset[str] | None) -> Iterator[Diagnostic]:
    """Legacy solver fields, and the net findings of every net written inline."""
    solver = doc.message
    for field in doc.tree.fields:
        if field.name.text == "solver_type":
            name = (
                solver.DESCRIPTOR.fields_by_name["solver_type"]
                .enum_type.values_by_number[solver.solver_type]
                .name
            )
            yield Diagnostic(
                "W204",
                f"legacy 'solver_type: {name}': the current form is the string field "
                "'type' (Caffe converts it on load)",
                field.pos,
                "warning",
            )
    for _, _, block, net in inline_nets(doc):
        yield from _net_findings(net, block.fields, known_types, (doc, block))


def net_findings(doc: Document, known_types: frozenset[str] | None) -> Iterator[Diagnostic]:
    """Structural problems of a ``NetParameter`` document, per phase where it matters."""
    yield from _net_findings(doc.message, doc.tree.fields, known_types, (doc, doc.tree))


def _net_findings(
    net: Any,
    tree_fields: list[Field],
    known_types: frozenset[str] | None,
    linked: tuple[Document, Any],
) -> Iterator[Diagnostic]:
    """:func:`net_findings` of one net: its message and the fields it was bound from."""
    fields = {f.name.text: f for f in reversed(tree_fields)}  # first of each name
    if len(net.layer) and len(net.layers):
        yield Diagnostic(
            "E201",
            "the net mixes 'layer' and legacy 'layers' (V1): Caffe refuses this; "
            "upgrade the 'layers' entries",
            fields["layers"].pos,
        )
        return
    for name in LEGACY_HEADER:
        if name in fields:
            yield Diagnostic(
                "W201",
                f"legacy '{name}:' header: an Input layer is the current form "
                "(Caffe converts it on load)",
                fields[name].pos,
                "warning",
            )
            break
    legacy = bool(len(net.layers))
    layers = net.layers if legacy else net.layer
    places = _Places(*linked, "layers" if legacy else "layer")
    if legacy:
        v0 = any(layer.HasField("layer") for layer in net.layers)
        kind = "V0 ('layers { layer { ... } }')" if v0 else "V1 ('layers' with enum types)"
        yield Diagnostic(
            "W202",
            f"legacy {kind} layer format: Caffe upgrades it on load",
            fields["layers"].pos,
            "warning",
        )
    else:
        for index, layer in enumerate(layers):
            if known_types is not None and layer.type not in known_types:
                hint = suggest(layer.type, sorted(known_types))
                yield Diagnostic(
                    "E205",
                    f"unknown layer type '{layer.type}' (layer '{layer.name}'){hint}",
                    places.child(index, "type", 0),
                )
    stages = sorted(
        {
            stage
            for layer in layers
            for rule in (*layer.include, *layer.exclude)
            for stage in (*rule.stage, *rule.not_stage)
        }
    )
    # A problem counts in a phase only if it occurs in every state of that phase in which the
    # layer runs: files often rely on stages ("test-on-train") that a solver sets.
    problems: dict[tuple[str, int, str, str], int] = {}
    runs: dict[tuple[int, str], int] = {}
    phase_enum = net.DESCRIPTOR.fields_by_name["state"].message_type.fields_by_name["phase"]
    all_phases = [value.name for value in phase_enum.enum_type.values]
    for phase in all_phases:
        for stage in [None, *stages]:
            state = NetState(phase, 0, frozenset([stage]) if stage else frozenset())
            for key in _state_problems(layers, state, net.input, legacy):
                problems[(*key, phase)] = problems.get((*key, phase), 0) + 1
            for index, layer in enumerate(layers):
                if layer_included(layer, state):
                    runs[(index, phase)] = runs.get((index, phase), 0) + 1
    seen: dict[tuple[str, int, str], list[str]] = {}
    for (code, index, what, phase), count in problems.items():
        if count == runs.get((index, phase), 0):
            seen.setdefault((code, index, what), []).append(phase)
    for (code, index, what), phases in sorted(seen.items(), key=lambda item: item[0][1]):
        layer = layers[index]
        where = "" if len(set(phases)) == len(all_phases) else f" (phase {phases[0]})"
        if code == "W203":
            yield Diagnostic(
                "W203",
                f"duplicate layer name '{layer.name}'{where}: weights are matched "
                "to layers by name",
                places.layer(index),
                "warning",
            )
            continue
        nth_text, _, blob = what.partition(":")
        nth = int(nth_text)
        if code == "E202":
            yield Diagnostic(
                "E202",
                f"bottom '{blob}' of layer '{layer.name}' is produced by no earlier layer{where}",
                places.child(index, "bottom", nth),
            )
        else:
            yield Diagnostic(
                "E203",
                f"top '{blob}' of layer '{layer.name}' is already produced by "
                f"another layer and this is not in place{where}",
                places.child(index, "top", nth),
            )
