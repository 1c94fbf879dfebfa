"""Validation: instantiate a net in Caffe (in a child process) and check its gradients."""

from protoedit.validate.report import FatalLog, InputGradient, ValidationReport
from protoedit.validate.runner import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT, validate

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_TIMEOUT",
    "FatalLog",
    "InputGradient",
    "ValidationReport",
    "validate",
]
