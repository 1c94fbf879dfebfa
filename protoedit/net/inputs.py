"""The legacy input header (``input:`` with ``input_dim`` or ``input_shape``), read as Caffe's
``UpgradeNetInput`` reads it.

Works on any ``NetParameter`` (ours or pycaffe's generated one) and imports neither protobuf
nor Lark, so the Caffe child reads the header with the same code as shapes and the rewrites.
"""

from __future__ import annotations

from typing import Any

#: The NetParameter fields of the legacy input header (an Input layer is the current form).
LEGACY_HEADER = ("input", "input_dim", "input_shape")


def legacy_input_shapes(net: Any) -> list[list[int]]:
    """The shapes a legacy header declares, one per ``input:``: the ``input_shape`` entries,
    else ``input_dim`` in groups of four; ``[]`` when it declares none (Caffe then only drops
    the ``input:`` names, it adds no Input layer)."""
    if len(net.input_shape):
        return [list(shape.dim) for shape in net.input_shape]
    dims = list(net.input_dim)
    return [dims[4 * i : 4 * i + 4] for i in range(len(net.input))] if dims else []


def header_shapes(net: Any) -> dict[str, list[int]]:
    """Shapes declared by a legacy ``input:`` header, by input name."""
    return dict(zip(net.input, legacy_input_shapes(net), strict=False))
