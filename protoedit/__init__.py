"""protoedit: parse, rewrite and validate Caffe network definitions (.prototxt).

The public API: :func:`load` / :func:`loads` give a :class:`Document` (lossless tree plus
typed message, editable by path); :func:`format_text` and :func:`check_text` (and their
``_file`` forms) are ``protoedit format`` and ``protoedit check``; :func:`validate_net` runs a
net in Caffe (:mod:`protoedit.validate` holds the rest); :mod:`protoedit.weights` reads and
writes ``.caffemodel`` files without Caffe and matches them to a net; every error is a
:class:`ProtoeditError` carrying ``path:line:col``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from protoedit.errors import (
    CaffeUnavailableError,
    InputError,
    Location,
    ProtoeditError,
    ProtoeditWarning,
)

if TYPE_CHECKING:
    from protoedit import weights as weights
    from protoedit.document import Document, load, loads
    from protoedit.files import format_file
    from protoedit.lint import Finding, check_file, check_text
    from protoedit.paths import PathError
    from protoedit.rewrites.basic import UnknownStageWarning
    from protoedit.schema import Schema, SchemaError, builtin_schema
    from protoedit.schema.binding import BindError
    from protoedit.syntax.edit import parse_fields
    from protoedit.syntax.formatter import format_text
    from protoedit.syntax.parser import ParseError
    from protoedit.validate import FatalLog, InputGradient, ValidationReport, validate_net

#: Where each public name lives; imported on first use, so that ``protoedit --version`` and
#: the CLI's start-up do not pay for protobuf, Lark and the schema.
_LAZY = {
    "BindError": "protoedit.schema.binding",
    "Document": "protoedit.document",
    "load": "protoedit.document",
    "loads": "protoedit.document",
    "Finding": "protoedit.lint",
    "check_file": "protoedit.lint",
    "check_text": "protoedit.lint",
    "PathError": "protoedit.paths",
    "UnknownStageWarning": "protoedit.rewrites.basic",
    "Schema": "protoedit.schema",
    "SchemaError": "protoedit.schema",
    "builtin_schema": "protoedit.schema",
    "parse_fields": "protoedit.syntax.edit",
    "format_file": "protoedit.files",
    "format_text": "protoedit.syntax.formatter",
    "ParseError": "protoedit.syntax.parser",
    "FatalLog": "protoedit.validate",
    "InputGradient": "protoedit.validate",
    "ValidationReport": "protoedit.validate",
    "validate_net": "protoedit.validate",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module when the name is first used (PEP 562); a subpackage
    (``protoedit.validate``) is imported when first named, as ``import`` would."""
    module = _LAZY.get(name)
    if module is None:
        try:
            return import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as missing:
            if missing.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module 'protoedit' has no attribute {name!r}") from None
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BindError",
    "CaffeUnavailableError",
    "Document",
    "FatalLog",
    "Finding",
    "InputError",
    "InputGradient",
    "Location",
    "ParseError",
    "PathError",
    "ProtoeditError",
    "ProtoeditWarning",
    "Schema",
    "SchemaError",
    "UnknownStageWarning",
    "ValidationReport",
    "builtin_schema",
    "check_file",
    "check_text",
    "format_file",
    "format_text",
    "load",
    "loads",
    "parse_fields",
    "validate_net",
]
