"""protoedit: parse, rewrite and validate Caffe network definitions (.prototxt).

The public API: :func:`load` / :func:`loads` give a :class:`Document` (lossless tree plus
typed message, editable by path); :func:`validate` runs a net in Caffe; every error is a
:class:`ProtoeditError` carrying ``path:line:col``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from protoedit.errors import CaffeUnavailableError, InputError, Location, ProtoeditError

if TYPE_CHECKING:
    from protoedit.document import BindError, Document, load, loads
    from protoedit.schema import Schema, SchemaError, builtin_schema
    from protoedit.syntax.parser import ParseError
    from protoedit.validate import FatalLog, InputGradient, ValidationReport, validate
else:
    # The subpackage shares the function's name: import it first (it is light, its names
    # load on use), so that the import system's binding of ``protoedit.validate`` to the
    # subpackage happens before, and the function below keeps the name.
    import_module("protoedit.validate")

    def validate(*args: Any, **kwargs: Any) -> Any:
        """Validate a net in Caffe: :func:`protoedit.validate.runner.validate` (loaded on use)."""
        from protoedit.validate.runner import validate as run

        return run(*args, **kwargs)


#: Where each public name lives; imported on first use, so that ``protoedit --version`` and
#: the CLI's start-up do not pay for protobuf, Lark and the schema.
_LAZY = {
    "BindError": "protoedit.document",
    "Document": "protoedit.document",
    "load": "protoedit.document",
    "loads": "protoedit.document",
    "Schema": "protoedit.schema",
    "SchemaError": "protoedit.schema",
    "builtin_schema": "protoedit.schema",
    "ParseError": "protoedit.syntax.parser",
    "FatalLog": "protoedit.validate",
    "InputGradient": "protoedit.validate",
    "ValidationReport": "protoedit.validate",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module when the name is first used (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'protoedit' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


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
