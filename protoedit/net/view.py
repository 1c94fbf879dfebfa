"""A read-only view of a net: layers, versioned blobs, producers, consumers, ancestry.

A blob name can stand for several values when in-place layers (``top == bottom``) rewrite
it; a :class:`BlobVersion` names one of them: the blob and the layer that wrote it.  Layer
names and blob names are separate namespaces: :meth:`NetView.resolve` decides which one a
user's target means, or refuses with both candidates named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protoedit.document import Document
from protoedit.errors import InputError, Location
from protoedit.net.state import NetState, layer_included
from protoedit.schema.binding import suggest
from protoedit.syntax.split import elements
from protoedit.syntax.tree import Block, Field, ListValue

INPUT = -1  # the producer index of blobs declared by a legacy ``input:`` header


class LegacyNetError(InputError):
    """The net uses V0/V1 ``layers``: rewrites work on the current ``layer`` format."""


@dataclass(frozen=True)
class BlobVersion:
    """One value of a blob: its name and the index of the layer that wrote it."""

    blob: str
    producer: int


@dataclass
class LayerInfo:
    """One layer with its place in the file and the blob versions it reads and writes."""

    index: int
    name: str
    type: str
    param: Any  # the caffe.LayerParameter
    node: Field  # the `layer` field in the tree that holds it (a `[list]` of several layers?)
    reads: list[BlobVersion] = field(default_factory=list)
    writes: list[BlobVersion] = field(default_factory=list)
    block: Block | None = None  # the layer's own `{ ... }` (node.value, or an item of its list)

    @property
    def pos(self) -> int:
        """Where the layer is: its field's name, or its ``{`` in a list-form field."""
        in_list = self.block is not None and self.node.value is not self.block
        return self.block.pos if in_list and self.block is not None else self.node.pos

    @property
    def in_place(self) -> bool:
        """True when some top is the bottom of the same index (Caffe's in-place rule)."""
        bottoms = list(self.param.bottom)
        return any(i < len(bottoms) and bottoms[i] == t for i, t in enumerate(self.param.top))


#: Fields inside a layer that rewrites edit one entry at a time.
_EDITED_IN_LAYERS = ("bottom", "top")


def require_net(doc: Document) -> None:
    """Refuse a document that is not a ``NetParameter`` (a solver, a label map, ...)."""
    if not doc.message_type.endswith(".NetParameter"):
        kind = doc.message_type.rpartition(".")[2]
        raise InputError(
            f"this is a {kind} file, not a net: the net rewrites work on NetParameter files"
            + (" (a solver names its nets in net: or net_param)" if "Solver" in kind else ""),
            Location(doc.path),
        )


def split_layer_lists(doc: Document) -> list[str]:
    """Write list-form ``layer: [{..}, {..}]`` / ``layers: [..]`` (and list-form bottoms and
    tops inside layers) as one field per entry; the message stays the same.

    Rewrites edit and remove layers one node each, so every layer needs a field of its own.
    Returns a report line per list split (none when the file has no list form).
    """
    tree = doc.tree
    lines = []
    for node in list(tree.fields):
        if node.name.text in ("layer", "layers") and isinstance(node.value, ListValue):
            line, _ = tree.line_col(node.pos)
            count = len(node.value.items)
            doc.split_list(tree, node)
            lines.append(
                f"list-form '{node.name.text}: [...]' (line {line}) written as {count} "
                f"'{node.name.text}' fields"
            )
    for _, block in elements(tree.fields, "layer") + elements(tree.fields, "layers"):
        if not isinstance(block, Block):
            continue
        for child in list(block.fields):
            if child.name.text in _EDITED_IN_LAYERS and isinstance(child.value, ListValue):
                line, _ = tree.line_col(child.pos)
                doc.split_list(block, child)
                lines.append(
                    f"list-form '{child.name.text}: [...]' (line {line}) written as "
                    f"separate '{child.name.text}' fields"
                )
    return lines


class NetView:
    """Layers in file order with their data flow, for one document (``layer`` format).

    Building a view reads; it never edits.  Each layer is linked to the tree nodes binding
    made it from (:meth:`Document.elements`), so list-form ``layer: [{..}, {..}]`` reads like
    one field per layer.  A rewrite that edits layers builds its view with :meth:`editable`,
    which first gives every layer (and its bottoms and tops) a field of its own.
    """

    def __init__(self, doc: Document, state: NetState | None = None) -> None:
        require_net(doc)
        self.normalised: list[str] = []  # what :meth:`editable` split, as report lines
        net = doc.message
        if len(net.layers):
            raise LegacyNetError(
                "the net uses legacy 'layers' (V0/V1); upgrade it to the 'layer' format first",
                doc.location(next(f for f in doc.tree.fields if f.name.text == "layers").pos),
            )
        self.doc = doc
        nodes = doc.elements(doc.tree, "layer")
        self.layers: list[LayerInfo] = []
        latest: dict[str, BlobVersion] = {b: BlobVersion(b, INPUT) for b in net.input}
        self.unresolved: list[tuple[int, str]] = []
        for index, (param, (node, item)) in enumerate(zip(net.layer, nodes, strict=True)):
            if state is not None and not layer_included(param, state):
                continue
            block = item if isinstance(item, Block) else None
            info = LayerInfo(index, param.name, param.type, param, node, block=block)
            for bottom in param.bottom:
                version = latest.get(bottom)
                if version is None:
                    self.unresolved.append((index, bottom))
                    version = BlobVersion(bottom, INPUT)
                info.reads.append(version)
            for top in param.top:
                version = BlobVersion(top, index)
                info.writes.append(version)
                latest[top] = version
            self.layers.append(info)
        self.by_index = {info.index: info for info in self.layers}
        self.final = latest

    @classmethod
    def editable(cls, doc: Document, state: NetState | None = None) -> NetView:
        """A view whose layers each have a ``layer { ... }`` field of their own, with bottoms
        and tops one field each, so rewrites edit and remove them node by node.  List forms
        are split first; ``normalised`` says what was."""
        require_net(doc)
        lines = split_layer_lists(doc)
        view = cls(doc, state)
        view.normalised = lines
        return view

    # -- look-ups ------------------------------------------------------------------------

    def layer_named(self, name: str) -> LayerInfo | None:
        """The first layer called ``name``."""
        return next((info for info in self.layers if info.name == name), None)

    def inplace_chain(self, version: BlobVersion) -> list[LayerInfo]:
        """The in-place layers that rewrite ``version`` one after another (BN, Scale, ReLU ...)."""
        chain = []
        current = version
        for info in self.layers:
            if info.index <= current.producer:
                continue
            for nth, read in enumerate(info.reads):
                if (
                    read == current
                    and nth < len(info.writes)
                    and info.writes[nth].blob == read.blob
                ):
                    chain.append(info)
                    current = info.writes[nth]
                    break
        return chain

    def resolve(self, target: str) -> BlobVersion:
        """The value a user's target names: ``layer:NAME``, ``blob:NAME`` or a bare name.

        A bare name that is a layer gives that layer's first top as the layer wrote it
        (before any in-place layer); one that is only a blob gives the blob's value as first
        written.  A name that is a layer and also a blob the layer does not write is refused.
        """
        kind, _, name = target.rpartition(":")
        layer = self.layer_named(name) if kind in ("", "layer") else None
        writers = [i for i in self.layers if any(w.blob == name for w in i.writes)]
        is_blob = kind in ("", "blob") and bool(writers)
        if (
            kind == ""
            and layer is not None
            and is_blob
            and not any(w.blob == name for w in layer.writes)
        ):
            wrote = f"writing '{layer.writes[0].blob}'" if layer.writes else "with no top"
            raise InputError(
                f"'{name}' is both a layer ({wrote}) and a blob "
                f"(written by layer '{writers[0].name}'); say layer:{name} or blob:{name}"
            )
        if layer is not None:
            if not layer.writes:
                raise InputError(f"layer '{name}' has no top to target")
            return layer.writes[0]
        if is_blob:
            return writers[0].writes[[w.blob for w in writers[0].writes].index(name)]
        raise InputError(self._unresolved(kind, name))

    def _unresolved(self, kind: str, name: str) -> str:
        """Why ``kind:name`` names nothing: the other namespace's meaning, or look-alikes."""
        layer = self.layer_named(name)
        writers = [i for i in self.layers if any(w.blob == name for w in i.writes)]
        if kind == "blob" and layer is not None and layer.writes:
            top = layer.writes[0].blob
            how = " in place" if layer.in_place else ""
            return (
                f"no blob named '{name}': that is a layer, writing '{top}'{how}; say "
                f"layer:{name} for its output, or blob:{top}"
            )
        if kind == "layer" and writers:
            return (
                f"no layer named '{name}': that is a blob, written by layer "
                f"'{writers[0].name}'; say blob:{name} or layer:{writers[0].name}"
            )
        layers = [i.name for i in self.layers] if kind in ("", "layer") else []
        blobs = [w.blob for i in self.layers for w in i.writes] if kind in ("", "blob") else []
        what = {"layer": "layer", "blob": "blob"}.get(kind, "layer or blob")
        return f"no {what} named '{name}'" + suggest(name, sorted(set(layers + blobs)))

    def ancestors(self, versions: list[BlobVersion]) -> set[int]:
        """Indices of every layer needed to compute ``versions`` (DAG walk, not a prefix)."""
        needed: set[int] = set()
        stack = [v.producer for v in versions if v.producer != INPUT]
        while stack:
            index = stack.pop()
            if index in needed:
                continue
            needed.add(index)
            stack.extend(r.producer for r in self.by_index[index].reads if r.producer != INPUT)
        return needed

    def descendants(self, version: BlobVersion) -> set[int]:
        """Indices of every layer whose inputs depend on ``version``."""
        found: set[int] = set()
        frontier = {version}
        for info in self.layers:
            if any(read in frontier for read in info.reads):
                found.add(info.index)
                frontier.update(info.writes)
        return found

    def outputs(self) -> list[BlobVersion]:
        """Final blob values no layer reads: what Caffe makes ``net.outputs``."""
        read = {r for info in self.layers for r in info.reads}
        return [v for v in self.final.values() if v not in read and v.producer != INPUT]
