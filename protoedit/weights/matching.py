"""The one rule by which weights meet a net, as Caffe applies it and as it fails silently.

Caffe copies a stored layer's blobs into the net's layer of the same name.  A layer that
learns and finds no blobs keeps its random initial values without a word; a stored name that
matches no layer (a renamed layer) is skipped; of two layers with one name only the last
gets the values.  A wrong count of blobs or a wrong shape aborts Caffe.  :func:`match` finds
all of these without Caffe; :func:`require_match` is the policy every command applies.

A :class:`~protoedit.document.Document` is matched as Caffe builds it for the TEST phase
(deploy, validate and explain do); pass a :class:`~protoedit.net.view.NetView` built for
another ``NetState`` to match another phase.
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from protoedit.errors import InputError, Location
from protoedit.net.layers import param_blobs
from protoedit.net.params import param_shapes
from protoedit.weights import fit
from protoedit.weights.errors import MIXED_FORMATS, WeightsError, WeightsWarning
from protoedit.weights.fit import dims, fits
from protoedit.weights.model import Shape, Weights

if TYPE_CHECKING:
    from protoedit.document import Document
    from protoedit.net.view import LayerInfo, NetView

#: How many names a message lists before it says "and N more".
SHOWN = 8


@dataclass(frozen=True)
class BlobMismatch:
    """A stored blob whose shape differs from the one the net allocates (Caffe aborts)."""

    layer: str
    role: str
    index: int
    expected: Shape
    stored: Shape

    def __str__(self) -> str:
        return (
            f"layer '{self.layer}' {self.role}: the net expects {dims(self.expected)}, "
            f"the weights file has {dims(self.stored)}"
        )


@dataclass(frozen=True)
class CountMismatch:
    """A layer stored with another number of blobs than the net gives it (Caffe aborts)."""

    layer: str
    expected: int
    stored: int

    def __str__(self) -> str:
        return (
            f"layer '{self.layer}' has {self.expected} parameter blobs in the net, "
            f"{self.stored} in the weights file"
        )


@dataclass
class WeightsMatch:
    """How a weights file meets a net (see the module docstring)."""

    path: str
    learners: list[str] = field(default_factory=list)  # net layers that have parameter blobs
    found: list[str] = field(default_factory=list)  # ... and are stored
    missing: list[str] = field(default_factory=list)  # ... and are not: they stay random
    unmatched: dict[str, list[str]] = field(default_factory=dict)  # stored name -> nearest
    duplicates: list[str] = field(default_factory=list)  # net names of several such layers
    stored_duplicates: list[str] = field(default_factory=list)  # names stored twice
    counts: list[CountMismatch] = field(default_factory=list)
    mismatches: list[BlobMismatch] = field(default_factory=list)
    mixed: bool = False  # the file has both V1 'layers' and 'layer': Caffe refuses it
    oversize: int | None = None  # the file's size when over protobuf's 2 GiB: Caffe refuses it

    @property
    def errors(self) -> list[str]:
        """What makes the weights wrong for the net: Caffe aborts, or fills the wrong layer."""
        found = [
            f"layer name '{name}' is given to more than one layer of the net: Caffe copies "
            "the stored values into the last of them only"
            for name in self.duplicates
        ]
        found += [
            f"layer name '{name}' is stored more than once: Caffe keeps the last one's values"
            for name in self.stored_duplicates
        ]
        if self.mixed:
            found.append(MIXED_FORMATS)
        if self.oversize is not None:
            found.append(oversize_sentence(self.oversize))
        return found + [str(c) for c in self.counts] + [str(m) for m in self.mismatches]

    @property
    def ok(self) -> bool:
        """Every layer that learns gets stored values and every stored layer is used."""
        return not (self.errors or self.missing or self.unmatched)

    def renamed_hints(self) -> list[str]:
        """One sentence per stored name that matches no layer, with the nearest names."""
        hints = []
        for name, nearest in self.unmatched.items():
            near = ", ".join(f"'{n}'" for n in nearest)
            hints.append(
                f"stored layer '{name}' matches no layer of the net"
                + (f" (renamed? nearest: {near})" if nearest else "")
            )
        return hints

    def describe(self) -> list[str]:
        """Every finding, one line each: errors, then missing layers, then unused names."""
        lines = list(self.errors)
        if self.missing:
            lines.append(missing_sentence(self))
        return lines + self.renamed_hints()


def oversize_sentence(size: int) -> str:
    """Why Caffe cannot read a file this large."""
    return (
        f"the weights file has {size} bytes, over the {fit.MAX_MESSAGE} (2 GiB) that "
        "protobuf, and so Caffe, reads in one binary model"
    )


def listed(names: list[str]) -> str:
    """``'a', 'b' and 3 more``."""
    shown = ", ".join(f"'{n}'" for n in names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def missing_sentence(found: WeightsMatch) -> str:
    """The one sentence naming the layers that learn but are not stored."""
    return (
        f"{len(found.missing)} of {len(found.learners)} layers that learn are not in the "
        f"weights file and keep their initial values: {listed(found.missing)}"
    )


def _view(net: Document | NetView) -> NetView:
    from protoedit.net.state import NetState
    from protoedit.net.view import NetView

    return net if isinstance(net, NetView) else NetView(net, NetState("TEST"))


def _expected(view: NetView, info: LayerInfo, shapes: Any) -> list[Shape | None] | None:
    """The parameter shapes of one layer (``None`` entries where not inferable)."""
    try:
        ins = [shapes.get(version) for version in info.reads]
    except InputError:  # a broken layer upstream: its own check reports it
        ins = [None] * len(info.reads)
    found = param_shapes(info.param, ins)
    return None if found is None else [tuple(s) if s is not None else None for s in found]


def match(net: Document | NetView, weights: Weights) -> WeightsMatch:
    """How ``weights`` meet ``net`` (a loaded net, or its view), layer by layer and blob by
    blob, by Caffe's rules (see the module docstring)."""
    from protoedit.net.shapes import infer_shapes

    view = _view(net)
    shapes = infer_shapes(view)
    result = WeightsMatch(weights.path, stored_duplicates=weights.duplicates)
    result.mixed = len({layer.v1 for layer in weights.layers}) > 1
    if weights.size is not None and weights.size > fit.MAX_MESSAGE:
        result.oversize = weights.size
    named: dict[str, list[LayerInfo]] = {}
    for info in view.layers:
        named.setdefault(info.name, []).append(info)
    expected: dict[str, list[Shape | None] | None] = {}
    for name, infos in named.items():
        roles = [param_blobs(info.param) for info in infos]
        learns = any(r for r in roles) or (name in weights and any(r is None for r in roles))
        if not learns:
            continue
        result.learners.append(name)
        if len(infos) > 1:
            result.duplicates.append(name)
        info = infos[-1]  # the layer Caffe copies into
        expected[name] = _expected(view, info, shapes)
        if name not in weights:
            result.missing.append(name)
            continue
        result.found.append(name)
        _compare(result, info, weights, expected[name])
    every = {layer.name for layer in view.doc.message.layer}  # all phases
    for layer in weights.with_blobs():
        if layer.name not in every and layer.name not in result.unmatched:
            result.unmatched[layer.name] = _nearest(layer.name, layer.shapes(), result, expected)
    return result


def _nearest(
    name: str,
    stored: list[tuple[Shape, bool]],
    result: WeightsMatch,
    expected: dict[str, list[Shape | None] | None],
) -> list[str]:
    """The layers a stored name most likely was renamed to: missing layers whose blobs have
    its shapes, then missing layers with a similar name (then any layer so named)."""

    def fitting(want: list[Shape | None] | None) -> bool:
        return (
            want is not None
            and len(want) == len(stored)
            and all(
                w is not None and fits(w, have, legacy)
                for w, (have, legacy) in zip(want, stored, strict=True)
            )
        )

    same = [missing for missing in result.missing if fitting(expected.get(missing))]
    similar = difflib.get_close_matches(name, result.missing, n=3, cutoff=0.5)
    nearest = [*difflib.get_close_matches(name, same, n=3, cutoff=0.0), *similar]
    nearest = list(dict.fromkeys(nearest))[:3]
    return nearest or difflib.get_close_matches(name, result.learners, n=3, cutoff=0.6)


def _compare(
    result: WeightsMatch, info: LayerInfo, weights: Weights, expected: list[Shape | None] | None
) -> None:
    """Count and shape of one stored layer against the net's layer."""
    stored = weights[info.name].shapes()
    if expected is None:  # a type the catalogue does not know: nothing to compare with
        return
    if len(expected) != len(stored):
        result.counts.append(CountMismatch(info.name, len(expected), len(stored)))
        return
    roles = param_blobs(info.param) or ()
    for k, (want, (have, legacy)) in enumerate(zip(expected, stored, strict=True)):
        if want is not None and not fits(want, have, legacy):
            result.mismatches.append(BlobMismatch(info.name, roles[k], k, want, have))


def require_match(
    net: Document | NetView, weights: Weights, *, strict: bool = False
) -> WeightsMatch:
    """:func:`match`, with the policy every command applies to ``--weights``.

    A count or shape that Caffe would abort on, or a duplicate name, is a
    :class:`WeightsError`; so is a file that holds none of the net's layers that learn.
    Layers that learn but are not stored are one :class:`WeightsWarning` naming them (with
    ``strict``, an error).
    """
    found = match(net, weights)
    where = Location(weights.path)
    if found.errors:
        raise WeightsError("the weights do not fit the net: " + "; ".join(found.errors), where)
    hints = found.renamed_hints()
    if found.learners and not found.found:
        stored = [layer.name for layer in weights.with_blobs()]
        raise WeightsError(
            "none of the net's layers that learn is in the weights file (it stores "
            f"{listed(stored) or 'no blobs'}): are these the weights of another net?",
            where,
            "\n".join(hints),
        )
    if found.missing:
        sentence = missing_sentence(found)
        if strict:
            raise WeightsError(sentence, where, "\n".join(hints))
        warnings.warn(WeightsWarning("; ".join([f"{where}: {sentence}", *hints])), stacklevel=2)
    return found
