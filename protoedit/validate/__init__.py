"""Validation: instantiate nets in Caffe (in worker processes) and check their gradients."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from protoedit.validate.defaults import (
    DECLARED,
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_TIMEOUT,
    EXTENTS,
    SMALLEST,
)

if TYPE_CHECKING:
    from protoedit.caffe.fatal import FatalLog
    from protoedit.validate.equivalence import EquivalenceReport, check_equivalence, check_rewrite
    from protoedit.validate.report import InputGradient, ValidationReport
    from protoedit.validate.runner import iter_validate, validate_files, validate_net

#: Imported on first use: the CLI reads the defaults without loading the runner.
_LAZY = {
    "EquivalenceReport": "protoedit.validate.equivalence",
    "check_equivalence": "protoedit.validate.equivalence",
    "check_rewrite": "protoedit.validate.equivalence",
    "FatalLog": "protoedit.caffe.fatal",
    "InputGradient": "protoedit.validate.report",
    "ValidationReport": "protoedit.validate.report",
    "iter_validate": "protoedit.validate.runner",
    "validate_files": "protoedit.validate.runner",
    "validate_net": "protoedit.validate.runner",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module when the name is first used (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'protoedit.validate' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DECLARED",
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_TIMEOUT",
    "EXTENTS",
    "SMALLEST",
    "EquivalenceReport",
    "FatalLog",
    "InputGradient",
    "ValidationReport",
    "check_equivalence",
    "check_rewrite",
    "iter_validate",
    "validate_files",
    "validate_net",
]
