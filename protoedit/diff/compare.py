"""The semantic diff of two nets: layers matched by name (twins by phase), fields by value.

Both sides are upgraded in memory first when legacy (V0/V1 layers, an ``input:`` header,
old BatchNorm specs), so a V1 file and its exact upgrade compare equal.  Every step is a
dictionary look-up or a pass over the layers; moved layers are the ones outside a longest
increasing subsequence of the common layers' old positions (``O(n log n)``), so two
100k-layer nets diff in about the time it takes to read them.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from protoedit.diff.costs import CostChange
from protoedit.diff.leaves import (
    Leaves,
    Path,
    json_value,
    leaves,
    lookup,
    position,
    show_path,
    show_value,
)
from protoedit.document import Document
from protoedit.errors import Location
from protoedit.net.state import NetState, layer_included
from protoedit.syntax import parse
from protoedit.syntax.printer import render_field, render_value
from protoedit.syntax.split import element_pos
from protoedit.syntax.tree import Block

#: Fields of a layer reported as re-wiring rather than as changed values.
WIRING = ("bottom", "top")


@dataclass(frozen=True)
class FieldChange:
    """One leaf whose value differs: its path, both values (as written) and both places."""

    field: str
    old: str
    new: str
    old_value: Any
    new_value: Any
    old_at: Location
    new_at: Location

    def to_json(self) -> dict[str, Any]:
        """The change as a JSON object."""
        return {
            "field": self.field,
            "old": self.old_value,
            "new": self.new_value,
            "old_at": str(self.old_at),
            "new_at": str(self.new_at),
        }


@dataclass(frozen=True)
class LayerEntry:
    """A layer only one side has."""

    layer: str
    type: str
    at: Location

    def to_json(self) -> dict[str, Any]:
        """The entry as a JSON object."""
        return {"layer": self.layer, "type": self.type, "at": str(self.at)}


@dataclass
class LayerChange:
    """A layer both sides have, with the fields that differ (bottoms and tops apart)."""

    layer: str
    type: str
    old_at: Location
    new_at: Location
    fields: list[FieldChange] = field(default_factory=list)
    rewired: list[FieldChange] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The change as a JSON object."""
        return {
            "layer": self.layer,
            "type": self.type,
            "old_at": str(self.old_at),
            "new_at": str(self.new_at),
            "fields": [c.to_json() for c in self.fields],
            "rewired": [c.to_json() for c in self.rewired],
        }


@dataclass(frozen=True)
class Move:
    """A layer whose place in the order changed: what it followed before and after."""

    layer: str
    old_after: str | None
    new_after: str | None
    old_at: Location
    new_at: Location

    def to_json(self) -> dict[str, Any]:
        """The move as a JSON object."""
        return {
            "layer": self.layer,
            "old_after": self.old_after,
            "new_after": self.new_after,
            "old_at": str(self.old_at),
            "new_at": str(self.new_at),
        }


@dataclass(frozen=True)
class TextChange:
    """Text (layout or comments) that differs where the content may not (``text=True``)."""

    what: str
    old_at: Location
    new_at: Location

    def to_json(self) -> dict[str, Any]:
        """The change as a JSON object."""
        return {"what": self.what, "old_at": str(self.old_at), "new_at": str(self.new_at)}


@dataclass
class NetDiff:
    """Everything that differs between two nets, each item with its places in both files."""

    old_path: str
    new_path: str
    net: list[FieldChange] = field(default_factory=list)
    removed: list[LayerEntry] = field(default_factory=list)
    added: list[LayerEntry] = field(default_factory=list)
    changed: list[LayerChange] = field(default_factory=list)
    moved: list[Move] = field(default_factory=list)
    text: list[TextChange] = field(default_factory=list)
    costs: CostChange | None = None  # parameters and FLOPs, when asked for

    @property
    def same(self) -> bool:
        """True when nothing differs (text only counts when it was compared)."""
        return not (
            self.net or self.removed or self.added or self.changed or self.moved or self.text
        )


class _Side:
    """One net prepared for comparison: layers by key, their tree nodes and leaves."""

    def __init__(self, doc: Document, phase: str | None) -> None:
        self.doc = doc
        self.message = doc.message
        self.is_net = doc.message_type.endswith(".NetParameter")
        layers = list(self.message.layer) if self.is_net else []
        # The node each layer was bound from: a `layer` field, or an item of `layer: [...]`.
        nodes = doc.elements(doc.tree, "layer") if self.is_net else []
        if phase is not None:
            state = NetState(phase)
            kept = [i for i, layer in enumerate(layers) if layer_included(layer, state)]
            layers, nodes = [layers[i] for i in kept], [nodes[i] for i in kept]
        self.layers = layers
        self.nodes = nodes
        self.keys: list[str] = []
        self.index: dict[str, int] = {}

    def set_keys(self, keys: list[str]) -> None:
        """Name each layer by the key it is matched under."""
        self.keys = keys
        self.index = {key: i for i, key in enumerate(keys)}

    def at(self, pos: int) -> Location:
        """``path:line:col`` of a source offset (the path alone for text made by an edit)."""
        return self.doc.location(pos)

    def layer_at(self, index: int, path: Path = ()) -> Location:
        """Where layer ``index`` (or the leaf ``path`` inside it) is written: its own field,
        or its ``{`` in a list-form ``layer: [...]``."""
        node, item = self.nodes[index]
        pos = element_pos(node, item)
        if path and isinstance(item, Block):
            pos = position(self.doc, item, path, pos)
        return self.at(pos)

    def layer_text(self, index: int) -> str:
        """The text of layer ``index``: its field, or its item of a list (trivia included)."""
        node, item = self.nodes[index]
        return render_field(node) if node.value is item else render_value(item)


def layer_keys(names: list[str]) -> list[str]:
    """Layer names made unique: a repeated name gets ``#2``, ``#3`` ... (train/test twins)."""
    seen: dict[str, int] = {}
    keys = []
    for name in names:
        count = seen.get(name, 0) + 1
        seen[name] = count
        base = name or "(unnamed)"
        keys.append(base if count == 1 else f"{base}#{count}")
    return keys


def _phase_class(layer: Any) -> str:
    """``TRAIN`` or ``TEST`` for a layer Caffe builds in that phase only, else ``ANY``."""
    built = [p for p in ("TRAIN", "TEST") if layer_included(layer, NetState(p))]
    return built[0] if len(built) == 1 else "ANY"


def pair_keys(old: list[Any], new: list[Any]) -> tuple[list[str], list[str]]:
    """Keys for the layers of both sides, equal for the layers matched with each other.

    Layers pair by name.  A repeated name (train/test twins) pairs layers of the same phase in
    order; a layer built in one phase only then pairs with a phase-less one of the other side
    (a TEST layer first: a deploy net is the TEST net).  A paired name keeps its name (then
    ``#2`` ...); the rest are numbered on after the pairs, the old side's first."""
    groups: dict[str, tuple[list[int], list[int]]] = {}
    for side, layers in enumerate((old, new)):
        for i, layer in enumerate(layers):
            groups.setdefault(layer.name, ([], []))[side].append(i)
    keys_old, keys_new = [""] * len(old), [""] * len(new)
    for name, (ia, ib) in groups.items():
        pairs = _pair(name, ia, ib, old, new)
        base = name or "(unnamed)"
        paired_a = {i for i, _ in pairs}
        paired_b = {j for _, j in pairs}
        rest_a = [i for i in ia if i not in paired_a]
        rest_b = [j for j in ib if j not in paired_b]
        pairs.sort(key=lambda pair: pair[1])
        n = 0
        for i, j in pairs:
            n += 1
            keys_old[i] = keys_new[j] = base if n == 1 else f"{base}#{n}"
        for keys, rest in ((keys_old, rest_a), (keys_new, rest_b)):
            for i in rest:
                n += 1
                keys[i] = base if n == 1 else f"{base}#{n}"
    return keys_old, keys_new


def _pair(
    name: str, ia: list[int], ib: list[int], old: list[Any], new: list[Any]
) -> list[tuple[int, int]]:
    """The (old, new) index pairs among the layers called ``name`` (see :func:`pair_keys`)."""
    if len(ia) == 1 and len(ib) == 1:
        a, b = _phase_class(old[ia[0]]), _phase_class(new[ib[0]])
        return [(ia[0], ib[0])] if a == b or "ANY" in (a, b) else []
    cls_a = {i: _phase_class(old[i]) for i in ia}
    cls_b = {j: _phase_class(new[j]) for j in ib}
    pairs: list[tuple[int, int]] = []
    free_a, free_b = list(ia), list(ib)
    for phase in ("ANY", "TEST", "TRAIN"):  # same phase, in order
        same_b = [j for j in free_b if cls_b[j] == phase]
        for i, j in zip([i for i in free_a if cls_a[i] == phase], same_b, strict=False):
            pairs.append((i, j))
            free_a.remove(i)
            free_b.remove(j)
    for phase in ("TEST", "TRAIN"):  # one phase against phase-less
        for i in [i for i in free_a if cls_a[i] == phase]:
            any_b = [j for j in free_b if cls_b[j] == "ANY"]
            if any_b:
                pairs.append((i, any_b[0]))
                free_a.remove(i)
                free_b.remove(any_b[0])
        for j in [j for j in free_b if cls_b[j] == phase]:
            any_a = [i for i in free_a if cls_a[i] == "ANY"]
            if any_a:
                pairs.append((any_a[0], j))
                free_a.remove(any_a[0])
                free_b.remove(j)
    return pairs


def prepare(doc: Document) -> Document:
    """``doc`` itself when current; else an upgraded copy (legacy nets compare as Caffe loads
    them).  The copy is parsed from the document's text, so places refer to that text."""
    from protoedit.rewrites.upgrade import needs_upgrade, upgrade

    if not doc.message_type.endswith(".NetParameter") or not needs_upgrade(doc):
        return doc
    copy = Document(parse(doc.dumps(), doc.path), doc.schema, doc.message_type, doc.lenient)
    upgrade(copy)
    return copy


def _compare(
    old: Any, new: Any, old_leaves: Leaves, new_leaves: Leaves
) -> list[tuple[Path, Any, str, str, Any, Any]]:
    """(path, descriptor, old text, new text, old JSON, new JSON) of each differing leaf."""
    out = []
    for path in dict.fromkeys([*old_leaves, *new_leaves]):
        fd = (old_leaves.get(path) or new_leaves[path])[0]
        a = old_leaves[path][1] if path in old_leaves else lookup(old, path, fd)
        b = new_leaves[path][1] if path in new_leaves else lookup(new, path, fd)
        if a != b:
            shown = (show_value(a, fd), show_value(b, fd), json_value(a, fd), json_value(b, fd))
            out.append((path, fd, *shown))
    return out


def _longest_increasing(values: list[int]) -> set[int]:
    """Positions in ``values`` of one longest increasing subsequence (patience sorting)."""
    tails: list[int] = []
    tail_at: list[int] = []
    previous = [-1] * len(values)
    for i, value in enumerate(values):
        k = bisect_left(tails, value)
        if k == len(tails):
            tails.append(value)
            tail_at.append(i)
        else:
            tails[k] = value
            tail_at[k] = i
        previous[i] = tail_at[k - 1] if k else -1
    keep: set[int] = set()
    i = tail_at[-1] if tail_at else -1
    while i >= 0:
        keep.add(i)
        i = previous[i]
    return keep


def diff_docs(
    old: Document,
    new: Document,
    text: bool = False,
    phase: str | None = None,
    *,
    costs: bool = False,
) -> NetDiff:
    """Compare two documents; with ``text`` also report layout and comment changes; with
    ``phase`` (``TRAIN``/``TEST``) only the layers Caffe builds in that phase; with
    ``costs`` the change in parameters and FLOPs (as built in ``phase``, default TEST)."""
    a, b = _Side(prepare(old), phase), _Side(prepare(new), phase)
    keys_a, keys_b = pair_keys(a.layers, b.layers)
    a.set_keys(keys_a)
    b.set_keys(keys_b)
    result = NetDiff(a.doc.path, b.doc.path)
    if costs and a.is_net and b.is_net:
        from protoedit.diff.costs import cost_change

        result.costs = cost_change(a.doc, b.doc, phase or "TEST")
    skip = frozenset(["layer", "layers"]) if a.is_net else frozenset()
    top_a, top_b = leaves(a.message, skip), leaves(b.message, skip)
    for path, _, was, now, was_json, now_json in _compare(a.message, b.message, top_a, top_b):
        result.net.append(
            FieldChange(
                show_path(path),
                was,
                now,
                was_json,
                now_json,
                a.at(position(a.doc, a.doc.tree, path, -1)),
                b.at(position(b.doc, b.doc.tree, path, -1)),
            )
        )
    for i, key in enumerate(a.keys):
        if key not in b.index:
            result.removed.append(LayerEntry(key, a.layers[i].type, a.layer_at(i)))
    common_old: list[int] = []
    common_keys: list[str] = []
    for j, key in enumerate(b.keys):
        i = a.index.get(key, -1)
        if i < 0:
            result.added.append(LayerEntry(key, b.layers[j].type, b.layer_at(j)))
            continue
        common_old.append(i)
        common_keys.append(key)
        if a.layers[i] != b.layers[j]:  # protobuf's own comparison first: most layers are equal
            change = _layer_change(a, b, i, j, key)
            if change.fields or change.rewired:  # else only spelt-out defaults differ
                result.changed.append(change)
        if text:
            _text_change(a, b, i, j, f"layer '{key}'", result)
    stable = _longest_increasing(common_old)
    for n, key in enumerate(common_keys):
        if n not in stable:
            i, j = a.index[key], b.index[key]
            result.moved.append(
                Move(
                    key,
                    a.keys[i - 1] if i else None,
                    b.keys[j - 1] if j else None,
                    a.layer_at(i),
                    b.layer_at(j),
                )
            )
    if text:
        _header_text_change(a, b, result)
    return result


def _layer_change(a: _Side, b: _Side, i: int, j: int, key: str) -> LayerChange:
    """The differing leaves of one matched layer, wiring apart."""
    old, new = a.layers[i], b.layers[j]
    change = LayerChange(key, new.type, a.layer_at(i), b.layer_at(j))
    for path, _, was, now, was_json, now_json in _compare(old, new, leaves(old), leaves(new)):
        item = FieldChange(
            show_path(path), was, now, was_json, now_json, a.layer_at(i, path), b.layer_at(j, path)
        )
        (change.rewired if path[0].name in WIRING else change.fields).append(item)
    return change


def _text_change(a: _Side, b: _Side, i: int, j: int, what: str, result: NetDiff) -> None:
    """Record a matched layer whose text (layout, comments) differs."""
    if a.layer_text(i) != b.layer_text(j):
        result.text.append(TextChange(what, a.layer_at(i), b.layer_at(j)))


def _header_text_change(a: _Side, b: _Side, result: NetDiff) -> None:
    """Text outside the layers: the net's own fields and what follows the last field."""

    def outside(side: _Side) -> tuple[str, int]:
        fields = [f for f in side.doc.tree.fields if f.name.text not in ("layer", "layers")]
        first = fields[0].pos if fields else -1
        return "".join(render_field(f) for f in fields) + side.doc.tree.end, first

    text_a, pos_a = outside(a)
    text_b, pos_b = outside(b)
    if text_a != text_b:
        result.text.append(TextChange("outside the layers", a.at(pos_a), b.at(pos_b)))
