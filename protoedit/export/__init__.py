"""``protoedit export``: Caffe nets as ONNX models, checked blob by blob against Caffe.

- :func:`to_onnx` (``doc, weights, ...) -> onnx.ModelProto``): one mapping per catalogue
  layer type (``layers_*.py``), the graph builder (``graph.py``), calibrated random weights
  when none are given (``random.py``);
- :func:`check`: Caffe (in the worker) and onnxruntime on the same seeded inputs, every blob
  compared within a float32 tolerance (``caffe_check.py``: a module ``check`` would shadow
  the function once imported).

onnx and onnxruntime are the ``onnx`` extra; they load when a name here is first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from protoedit.export.caffe_check import BlobResult, CheckReport, check
    from protoedit.export.mapping import ExportError
    from protoedit.export.model import DEFAULT_OPSET, export, to_onnx

_LAZY = {
    "BlobResult": "protoedit.export.caffe_check",
    "CheckReport": "protoedit.export.caffe_check",
    "check": "protoedit.export.caffe_check",
    "ExportError": "protoedit.export.mapping",
    "DEFAULT_OPSET": "protoedit.export.model",
    "export": "protoedit.export.model",
    "to_onnx": "protoedit.export.model",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (onnx is heavy)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'protoedit.export' has no attribute {name!r}")
    import protoedit.export.layers  # noqa: F401 - registers every mapping

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_OPSET",
    "BlobResult",
    "CheckReport",
    "ExportError",
    "check",
    "export",
    "to_onnx",
]
