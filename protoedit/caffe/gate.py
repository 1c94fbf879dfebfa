"""The one gate for Python layers: a net whose ``type: "Python"`` layer Caffe would build (and
so import its module, running user code) loads only when the caller allowed it.

:class:`~protoedit.caffe.session.Session` checks every request that names a net file, so
no path that loads a net can skip it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from protoedit.errors import Location, ProtoeditError

_PYTHON_TYPE = re.compile(r"""\btype\s*:\s*(?:"Python"|'Python'|PYTHON\b)""")


@dataclass(frozen=True)
class PythonLayer:
    """A Python layer Caffe would build: its name, its module and where it is written."""

    name: str
    module: str
    location: Location


class PythonLayersRefused(ProtoeditError):
    """A net has Python layers, which import and run their module when the net loads, and
    the caller did not allow them (``allow_python_layers=True``, ``--allow-python-layers``).

    ``layers`` are the refused layers; ``needs`` names the parameter that allows them.
    """

    def __init__(self, layers: list[PythonLayer]) -> None:
        self.layers = layers
        self.needs: dict[str, str | None] = {"allow_python_layers": "True"}
        names = ", ".join(repr(layer.name) for layer in layers)
        where = "; ".join(str(layer.location) for layer in layers[1:])
        super().__init__(
            f"the net has Python layers ({names}), which import and run their module's code "
            "when the net loads; they are refused unless allowed",
            layers[0].location,
            "  run them with allow_python_layers=True (--allow-python-layers)"
            + (f"\n  also at {where}" if where else ""),
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.layers,))


def mentions_python_layers(text: str) -> bool:
    """Whether net ``text`` mentions the Python layer type at all (a quick, safe over-guess)."""
    return _PYTHON_TYPE.search(text) is not None


def python_layers(text: str, path: str, phase: str = "TEST") -> list[PythonLayer]:
    """The Python layers Caffe would build from net ``text`` in ``phase`` (its FilterNet
    rules at level 0, no stages).  A text our parser cannot read is scanned for the type
    instead: any mention then counts (refuse when unsure)."""
    from protoedit.document import loads
    from protoedit.net.layers import PYTHON, is_a
    from protoedit.net.state import NetState, layer_included

    try:
        doc = loads(text, path=path, message_type="caffe.NetParameter")
        net = doc.message
        nodes = doc.elements(doc.tree, "layer")
    except ProtoeditError:
        found = _PYTHON_TYPE.search(text)
        if found is None:
            return []
        line = text.count("\n", 0, found.start()) + 1
        column = found.start() - text.rfind("\n", 0, found.start())
        return [PythonLayer("?", "", Location(path, line, column))]
    state = NetState(phase.upper())
    layers = [
        PythonLayer(param.name, param.python_param.module, doc.location(node.pos))
        for param, (node, _) in zip(net.layer, nodes, strict=False)
        if is_a(param.type, PYTHON) and layer_included(param, state)
    ]
    legacy = doc.elements(doc.tree, "layers")
    layers += [
        PythonLayer(param.name, param.python_param.module, doc.location(node.pos))
        for param, (node, _) in zip(net.layers, legacy, strict=False)
        if is_a(type(param).LayerType.Name(param.type), PYTHON)
    ]
    return layers


def check_python_layers(
    text: str, path: str, *, phase: str = "TEST", allow: bool
) -> list[PythonLayer]:
    """The Python layers of net ``text`` (see :func:`python_layers`); raises
    :class:`PythonLayersRefused` when there are some and ``allow`` is false."""
    found = python_layers(text, path, phase)
    if found and not allow:
        raise PythonLayersRefused(found)
    return found
