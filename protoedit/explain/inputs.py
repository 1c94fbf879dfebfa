"""What every explain method is given: a net (a Document or a file) and its input data.

A net given as a :class:`~protoedit.document.Document` is copied before it is rewritten, so
the caller's stays untouched.  Input data is an array, a ``.npy`` or an image file: an array
(or ``.npy``) is the blob as fed to the net, already preprocessed; an image file is pixels,
preprocessed by a :class:`~protoedit.explain.preprocess.Preprocess`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from protoedit.document import Document, load, loads
from protoedit.errors import InputError, Location, MissingArgumentError
from protoedit.explain.preprocess import Preprocess, finite_input, load_input
from protoedit.net.shapes import infer_shapes
from protoedit.net.view import NetView

Array = npt.NDArray[np.float32]
NetSource = Document | str | os.PathLike[str]
InputSource = npt.ArrayLike | str | os.PathLike[str]


def private_copy(net: NetSource) -> Document:
    """A private copy of ``net`` to rewrite (a Document given by the caller stays untouched)."""
    if isinstance(net, Document):
        return loads(
            net.dumps(), net.schema, net.lenient, path=net.path, message_type=net.message_type
        )
    return load(net)


def input_shapes(doc: Document) -> dict[str, tuple[int, ...]]:
    """Declared shapes of the net's Input blobs (what images are fitted to)."""
    view = NetView(doc)
    shapes = infer_shapes(view)
    out: dict[str, tuple[int, ...]] = {}
    for info in view.layers:
        if info.type == "Input":
            for version in info.writes:
                shape = shapes.get(version)
                if shape is not None:
                    out[version.blob] = tuple(shape)
    return out


def load_inputs(
    declared: Mapping[str, tuple[int, ...]],
    inputs: InputSource | Mapping[str, InputSource],
    pre: Preprocess,
) -> dict[str, Array]:
    """Arrays for every input blob (``declared``: the net's :func:`input_shapes`): from
    arrays, ``.npy`` files or images; batch axis added to a single item; every axis but the
    batch must match the declared shape."""
    if not isinstance(inputs, Mapping):
        if len(declared) != 1:
            names = ", ".join(declared) or "none"
            raise MissingArgumentError(
                f"the net has several input blobs ({names}): name each one", {"inputs": None}
            )
        inputs = {next(iter(declared)): inputs}
    missing = sorted(set(declared) - set(inputs))
    unknown = sorted(set(inputs) - set(declared))
    if unknown:
        raise InputError(
            f"no input blob named {', '.join(unknown)}; the net's inputs: {', '.join(declared)}"
        )
    if missing:
        raise InputError(f"no data given for input blob {', '.join(missing)}")
    arrays = {}
    for name, source in inputs.items():
        shape = declared[name]
        if isinstance(source, str | os.PathLike):
            array = load_input(source, shape, pre)
            where = Location(str(source))
        else:
            array = finite_input(np.asarray(source, dtype=np.float32), f"input '{name}'")
            where = None
        if array.ndim == len(shape) - 1:
            array = array[None]
        if array.ndim != len(shape) or tuple(array.shape[1:]) != tuple(shape[1:]):
            raise InputError(
                f"input '{name}' has shape {list(array.shape)}; the net expects "
                f"N x {' x '.join(map(str, shape[1:]))}"
                if len(shape) > 1
                else f"input '{name}' has shape {list(array.shape)}; the net expects a vector",
                where,
            )
        arrays[name] = array
    return arrays


def is_solver(doc: Document) -> bool:
    """Whether ``doc`` holds a SolverParameter (a solver file given where a net is expected)."""
    return doc.message_type.rpartition(".")[2] == "SolverParameter"


def solver_train_net(doc: Document) -> Document:
    """The training net a solver names, as ``caffe.SGDSolver`` finds it: ``net`` or
    ``train_net`` (a path: from the working directory, as Caffe reads it, else beside the
    solver), or the inline ``net_param`` or ``train_net_param``."""
    from pathlib import Path

    message = doc.message
    for inline in ("net_param", "train_net_param"):
        if message.HasField(inline):
            block = next(f.value for f in doc.tree.fields if f.name.text == inline)
            return private_copy(doc.nested(block, "NetParameter"))  # type: ignore[arg-type]
    for field in ("net", "train_net"):
        if message.HasField(field):
            named = Path(getattr(message, field))
            beside = Path(doc.path).parent / named
            path = named if named.is_file() or named.is_absolute() else beside
            if not path.is_file():
                raise InputError(
                    f"the solver's {field} '{named}' is not a file (looked in the working "
                    f"directory and beside the solver)",
                    Location(doc.path),
                )
            return load(path)
    raise InputError(
        "the solver names no training net (net, train_net, net_param)", Location(doc.path)
    )
