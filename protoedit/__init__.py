"""protoedit: parse, rewrite and validate Caffe network definitions (.prototxt).

The public API: :func:`load` / :func:`loads` give a :class:`Document` (lossless tree plus
typed message, editable by path); :func:`validate` runs a net in Caffe; every error is a
:class:`ProtoeditError` carrying ``path:line:col``.
"""

from protoedit.document import BindError, Document, load, loads
from protoedit.errors import CaffeUnavailableError, InputError, Location, ProtoeditError
from protoedit.schema import Schema, SchemaError, builtin_schema
from protoedit.syntax.parser import ParseError
from protoedit.validate import FatalLog, InputGradient, ValidationReport, validate

__all__ = [
    "BindError",
    "CaffeUnavailableError",
    "Document",
    "FatalLog",
    "InputError",
    "InputGradient",
    "Location",
    "ParseError",
    "ProtoeditError",
    "Schema",
    "SchemaError",
    "ValidationReport",
    "builtin_schema",
    "load",
    "loads",
    "validate",
]
