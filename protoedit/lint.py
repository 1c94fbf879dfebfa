"""``protoedit check``: syntax, schema and net lint findings, each with a code and a place.

Codes: ``E0xx`` syntax, ``E1xx``/``W1xx`` schema (see :mod:`protoedit.schema.binding`),
``E2xx``/``W2xx`` net structure.  Errors are what Caffe would refuse; warnings are legacy
but valid constructs (Caffe upgrades them on load) and style.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

from protoedit.document import Document, message_type_of
from protoedit.errors import Location
from protoedit.files import read_text
from protoedit.net.inputs import LEGACY_HEADER
from protoedit.net.state import NetState, layer_included
from protoedit.schema import Schema
from protoedit.schema.binding import Diagnostic, suggest
from protoedit.syntax.split import element_pos, elements
from protoedit.syntax.tree import Block, Field, Scalar

#: A problem of one state: (code, layer index, (nth bottom/top, blob; or 0, layer name)).
Problem = tuple[str, int, tuple[int, str]]
_FLOW_FIELDS = attrgetter("name", "bottom", "top")


def _flow_problems(layers: Any, skip: frozenset[int], inputs: Any, legacy: bool) -> list[Problem]:
    """(code, layer index, (nth, blob or name)) for each problem of the net Caffe builds
    when the layers at the indices in ``skip`` are left out.

    One pass over the messages; blobs are checked in bulk and looked at one by one only
    when something is wrong, so a clean layer costs a few set operations."""
    available = set(inputs)
    names: set[str] = set()
    found: list[Problem] = []
    for index, (name, bottoms, tops) in enumerate(map(_FLOW_FIELDS, layers)):
        if skip and index in skip:
            continue
        if name in names and not legacy:
            found.append(("W203", index, (0, name)))
        names.add(name)
        if not available.issuperset(bottoms):
            found.extend(
                ("E202", index, (nth, bottom))
                for nth, bottom in enumerate(bottoms)
                if bottom not in available
            )
        if len(tops) == 1 and tops[0] not in available:
            available.add(tops[0])  # the common case: one new top
            continue
        for nth, top in enumerate(tops):
            in_place = nth < len(bottoms) and bottoms[nth] == top
            if top in available and not in_place:
                found.append(("E203", index, (nth, top)))
            available.add(top)
    return found


def _states(layers: Any, ruled: list[int], phases: list[str]) -> list[tuple[str, frozenset[int]]]:
    """(phase, indices of the layers it leaves out) for each state Caffe could build: every
    phase with no stage and with each stage the rules name (only ``ruled`` layers vary)."""
    stages = sorted(
        {
            stage
            for index in ruled
            for rule in (*layers[index].include, *layers[index].exclude)
            for stage in (*rule.stage, *rule.not_stage)
        }
    )
    states = []
    for phase in phases:
        for stage in [None, *stages]:
            state = NetState(phase, 0, frozenset([stage]) if stage else frozenset())
            states.append(
                (phase, frozenset(i for i in ruled if not layer_included(layers[i], state)))
            )
    return states


def _phase_problems(
    layers: Any, states: list[tuple[str, frozenset[int]]], inputs: Any, legacy: bool
) -> dict[tuple[str, int, tuple[int, str]], list[str]]:
    """The problems that count, with the phases they count in, in finding order.

    A problem counts in a phase only if it occurs in every state of that phase in which the
    layer runs: files often rely on stages ("test-on-train") that a solver sets.  States
    that leave out the same layers build the same net: each such net is walked once."""
    built: dict[frozenset[int], list[Problem]] = {}
    problems: dict[tuple[str, int, tuple[int, str], str], int] = {}
    for phase, skip in states:
        if skip not in built:
            built[skip] = _flow_problems(layers, skip, inputs, legacy)
        for code, index, what in built[skip]:
            key = (code, index, what, phase)
            problems[key] = problems.get(key, 0) + 1
    seen: dict[tuple[str, int, tuple[int, str]], list[str]] = {}
    for (code, index, what, phase), count in problems.items():
        runs = sum(1 for p, skip in states if p == phase and index not in skip)
        if count == runs:
            seen.setdefault((code, index, what), []).append(phase)
    return seen


class _Places:
    """Source offsets of layers and their bottoms/tops, from the nodes binding linked to
    each message entry (:meth:`Document.elements`); looked up only for findings made."""

    def __init__(self, doc: Document, container: Any, field_name: str) -> None:
        self.doc = doc
        self.container = container
        self.field_name = field_name
        self._layers: list[tuple[Field, Scalar | Block]] | None = None

    @property
    def layers(self) -> list[tuple[Field, Scalar | Block]]:
        """The (field, item) pair of each layer entry, in message order."""
        if self._layers is None:
            self._layers = self.doc.elements(self.container, self.field_name)
        return self._layers

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


def _first_fields(tree_fields: list[Field], wanted: tuple[str, ...]) -> dict[str, Field]:
    """The first field of each ``wanted`` name that the file has."""
    first: dict[str, Field] = {}
    for field in tree_fields:
        name = field.name.text
        if name in wanted and name not in first:
            first[name] = field
    return first


def _net_findings(
    net: Any,
    tree_fields: list[Field],
    known_types: frozenset[str] | None,
    linked: tuple[Document, Any],
) -> Iterator[Diagnostic]:
    """:func:`net_findings` of one net: its message and the fields it was bound from."""
    fields = _first_fields(tree_fields, ("layers", *LEGACY_HEADER))
    if not tree_fields:
        yield Diagnostic("W205", "the file is empty: no net to build", 0, "warning")
        return
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
    ruled: list[int] = []  # the layers with include/exclude rules: only they vary by state
    if legacy:
        v0 = any(layer.HasField("layer") for layer in net.layers)
        kind = "V0 ('layers { layer { ... } }')" if v0 else "V1 ('layers' with enum types)"
        yield Diagnostic(
            "W202",
            f"legacy {kind} layer format: Caffe upgrades it on load",
            fields["layers"].pos,
            "warning",
        )
        ruled = [
            i for i, (include, exclude) in enumerate(map(_RULES, layers)) if include or exclude
        ]
    else:
        hints: dict[str, str] = {}  # by type: a misspelt type tends to recur
        candidates = sorted(known_types) if known_types is not None else []
        for index, (kind, include, exclude) in enumerate(map(_TYPE_AND_RULES, layers)):
            if include or exclude:
                ruled.append(index)
            if known_types is None or kind in known_types:
                continue
            if kind not in hints:
                hints[kind] = suggest(kind, candidates)
            yield Diagnostic(
                "E205",
                f"unknown layer type '{kind}' (layer '{layers[index].name}'){hints[kind]}",
                places.child(index, "type", 0),
                subject=kind,
            )
    phase_enum = net.DESCRIPTOR.fields_by_name["state"].message_type.fields_by_name["phase"]
    all_phases = [value.name for value in phase_enum.enum_type.values]
    states = _states(layers, ruled, all_phases)
    seen = _phase_problems(layers, states, net.input, legacy)
    for (code, index, (nth, blob)), phases in sorted(seen.items(), key=lambda item: item[0][1]):
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
        elif code == "E202":
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


_RULES = attrgetter("include", "exclude")
_TYPE_AND_RULES = attrgetter("type", "include", "exclude")


@dataclass(frozen=True)
class Finding:
    """One problem ``protoedit check`` reports: ``str()`` is ``path:line:col: CODE message``;
    ``severity`` is ``error`` (Caffe would refuse the file) or ``warning``."""

    location: Location
    code: str
    message: str
    severity: str = "error"
    #: What the finding is about (E205: the unknown layer type), for front ends that act on it.
    subject: str | None = None

    def __str__(self) -> str:
        return f"{self.location}: {self.code} {self.message}"


def check_text(
    text: str,
    *,
    name: str = "<string>",
    schema: str | os.PathLike[str] | Schema | None = None,
    message_type: str | None = None,
) -> list[Finding]:
    """Every finding of ``protoedit check`` for ``text`` (named ``name`` in locations), in file
    order: syntax (``E0xx``, the parse stops at the first), schema (``E1xx``/``W1xx``) and,
    for a net or a solver, net structure (``E2xx``/``W2xx``; linted past schema problems).

    ``schema`` is a ``caffe.proto`` path or a :class:`~protoedit.Schema` (default: the
    built-in one); a schema or ``message_type`` that cannot be used raises."""
    from protoedit.net.layers import known_types
    from protoedit.schema import BUILTIN_PROTO, load_schema
    from protoedit.syntax import ParseError, parse

    resolved = load_schema(Path(schema) if isinstance(schema, os.PathLike) else schema)
    if message_type:
        resolved.descriptor(message_type)
    try:
        tree = parse(text, name)
    except ParseError as exc:
        where = exc.location or Location(name)
        return [Finding(where, "E001", exc.message)]
    doc = Document(tree, resolved, message_type_of(tree, resolved, message_type))
    diagnostics = doc.diagnostics()
    if doc.message_type.endswith((".NetParameter", ".SolverParameter")):
        # Lint the net even past schema problems: what fails to bind is left out of it. A
        # file that binds without errors is its own lint document (bound once).
        clean = not any(d.severity == "error" for d in diagnostics)
        lint_doc = (
            doc if clean else Document(tree, resolved, doc.message_type, True, best_effort=True)
        )
        accepted = known_types(resolved, resolved.path == str(BUILTIN_PROTO))
        diagnostics += list(findings(lint_doc, accepted))
    diagnostics.sort(key=lambda d: d.pos)
    return [
        Finding(doc.location(d.pos), d.code, d.message, d.severity, d.subject) for d in diagnostics
    ]


def check_file(
    path: str | os.PathLike[str],
    *,
    schema: str | os.PathLike[str] | Schema | None = None,
    message_type: str | None = None,
) -> list[Finding]:
    """:func:`check_text` of a file (an unreadable file raises :class:`InputError`)."""
    return check_text(read_text(path), name=str(path), schema=schema, message_type=message_type)
