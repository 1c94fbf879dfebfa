"""Validation: instantiate nets in Caffe (in worker processes) and check their gradients."""

from protoedit.validate.report import FatalLog, InputGradient, ValidationReport
from protoedit.validate.runner import (
    DECLARED,
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_TIMEOUT,
    iter_validate,
    validate,
    validate_files,
)

__all__ = [
    "DECLARED",
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_TIMEOUT",
    "FatalLog",
    "InputGradient",
    "ValidationReport",
    "iter_validate",
    "validate",
    "validate_files",
]
