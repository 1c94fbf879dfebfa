"""Weights to and from ``.npz``, HDF5 (``.h5``) and safetensors files, keyed ``layer/role``.

Exported files hold the blobs only, under the keys :meth:`Weights.named` gives; importing
needs the net, which says each layer's type and the order of its blobs.  HDF5 keeps a key
``conv1/weight`` as group ``conv1`` holding dataset ``weight`` (a layer name with ``/``, as in
GoogLeNet's ``inception_3a/1x1``, nests further; the role is always the last part).
h5py and safetensors come with the ``weights`` extra (``pip install 'protoedit[weights]'``).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from protoedit.errors import Location
from protoedit.files import write_atomic_with
from protoedit.net.layers import param_blobs
from protoedit.weights.errors import WeightsError
from protoedit.weights.model import Array, Weights

if TYPE_CHECKING:
    from protoedit.document import Document

FORMATS = (".npz", ".h5", ".hdf5", ".safetensors")


def format_of(path: str | os.PathLike[str]) -> str:
    """The format a file name says (``.npz``, ``.h5``, ``.safetensors``); others refused."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise WeightsError(
            f"unknown array file format '{suffix or Path(path).name}': use one of "
            + ", ".join(FORMATS),
            Location(str(path)),
        )
    return ".h5" if suffix == ".hdf5" else suffix


def _extra(module: str, path: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise WeightsError(
            f"{Path(path).suffix} files need {module.split('.')[0]}: "
            "pip install 'protoedit[weights]'",
            Location(path),
        ) from None


# -- export ---------------------------------------------------------------------------------


def export_arrays(
    weights: Weights, path: str | os.PathLike[str], *, net: Document | None = None
) -> list[Path]:
    """Write every blob of ``weights`` to ``path`` (format by suffix), keyed ``layer/role``
    (roles from ``net`` when given); atomic; returns ``[path]``."""
    arrays = weights.named(net)
    kind = format_of(path)
    writers: dict[str, Callable[[Path], None]] = {
        ".npz": lambda tmp: _write_npz(tmp, arrays),
        ".h5": lambda tmp: _write_h5(tmp, arrays, str(path)),
        ".safetensors": lambda tmp: _write_safetensors(tmp, arrays, str(path)),
    }
    write_atomic_with(path, writers[kind])
    return [Path(path)]


def _write_npz(tmp: Path, arrays: Mapping[str, Array]) -> None:
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]


def _write_h5(tmp: Path, arrays: Mapping[str, Array], shown: str) -> None:
    h5py = _extra("h5py", shown)
    with h5py.File(tmp, "w") as handle:
        for key, array in arrays.items():
            handle.create_dataset(key, data=array)


def _write_safetensors(tmp: Path, arrays: Mapping[str, Array], shown: str) -> None:
    numpy_api = _extra("safetensors.numpy", shown)
    numpy_api.save_file({k: np.ascontiguousarray(a) for k, a in arrays.items()}, str(tmp))


# -- import ---------------------------------------------------------------------------------


def read_arrays(path: str | os.PathLike[str]) -> dict[str, Array]:
    """The arrays of an ``.npz``, HDF5 or safetensors file by key; unreadable files are a
    located :class:`WeightsError`."""
    shown = str(path)
    kind = format_of(path)
    if not Path(path).is_file():
        raise WeightsError("cannot read array file: no such file", Location(shown))
    try:
        if kind == ".npz":
            with np.load(path, allow_pickle=False) as stored:
                return {key: stored[key] for key in stored.files}
        if kind == ".h5":
            return _read_h5(path, shown)
        return dict(_extra("safetensors.numpy", shown).load_file(shown))
    except WeightsError:
        raise
    except Exception as exc:  # each library has its own errors for a damaged file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsError(f"not a readable {kind} file: {reason}", Location(shown)) from None


def _read_h5(path: str | os.PathLike[str], shown: str) -> dict[str, Array]:
    h5py = _extra("h5py", shown)
    found: dict[str, Array] = {}
    with h5py.File(path, "r") as handle:

        def visit(name: str, item: Any) -> None:
            if isinstance(item, h5py.Dataset):
                found[name] = np.asarray(item[()])

        handle.visititems(visit)
    return found


def _as_float32(key: str, array: Array, shown: str) -> Array:
    """An imported array as Caffe stores it (float32); values float32 cannot hold refused."""
    if array.dtype.kind not in "fiu":
        raise WeightsError(f"'{key}' holds {array.dtype} values, not numbers", Location(shown))
    with np.errstate(over="ignore"):  # found below, said as an error
        values = np.asarray(array, dtype=np.float32)
    if array.dtype.kind == "f" and not np.array_equal(np.isfinite(values), np.isfinite(array)):
        raise WeightsError(f"'{key}' holds values too large for float32", Location(shown))
    return values


def import_arrays(path: str | os.PathLike[str], net: Document, *, strict: bool = False) -> Weights:
    """Weights for ``net`` from an array file keyed ``layer/role``: each layer's blobs in the
    net's order, its type from the net; checked by
    :func:`~protoedit.weights.matching.require_match` (``strict``: every layer that learns)."""
    from protoedit.weights.matching import require_match

    shown = str(path)
    groups: dict[str, dict[str, Array]] = {}
    for key, array in read_arrays(path).items():
        layer, _, role = key.rpartition("/")
        if not layer:
            raise WeightsError(f"key '{key}' is not LAYER/ROLE", Location(shown))
        groups.setdefault(layer, {})[role] = _as_float32(key, array, shown)
    from protoedit.net.state import NetState
    from protoedit.net.view import NetView
    from protoedit.weights.caffemodel import layer_from_message

    view = NetView(net, NetState("TEST"))
    by_name = {layer.name: layer for layer in net.message.layer}
    unknown = [name for name in groups if name not in by_name]
    if unknown:
        near = difflib.get_close_matches(unknown[0], list(by_name), n=3, cutoff=0.5)
        raise WeightsError(
            f"layers not in the net: {', '.join(repr(n) for n in unknown)}"
            + (f" (nearest to '{unknown[0]}': {', '.join(repr(n) for n in near)})" if near else ""),
            Location(shown),
        )
    layers = []
    for info in view.layers:  # every layer, as Caffe saves a net ...
        held = groups.pop(info.name, {})
        declared = param_blobs(info.param)
        if not held and declared != ():
            continue  # ... but one stored without its blobs would abort Caffe: left out
        roles = list(declared or sorted(held, key=_blob_index))
        if held and sorted(held) != sorted(roles):
            raise WeightsError(
                f"layer '{info.name}' has arrays {sorted(held)}; the net gives it {roles}",
                Location(shown),
            )
        layers.append(layer_from_message(info.param, [held[r] for r in roles if held]))
    if groups:
        raise WeightsError(
            "arrays of layers the net builds in no TEST phase: "
            + ", ".join(repr(n) for n in groups),
            Location(shown),
        )
    weights = Weights(layers, path=shown)
    require_match(net, weights, strict=strict)
    return weights


def _blob_index(role: str) -> int:
    """``blob3`` -> 3 (roles of a type the catalogue does not know)."""
    digits = role.removeprefix("blob")
    return int(digits) if digits.isdigit() else 1 << 30
