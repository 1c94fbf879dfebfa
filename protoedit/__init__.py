"""protoedit: parse, rewrite and validate Caffe network definitions (.prototxt)."""

from protoedit.errors import CaffeUnavailableError, InputError, Location, ProtoeditError
from protoedit.validate import FatalLog, InputGradient, ValidationReport, validate

__all__ = [
    "CaffeUnavailableError",
    "FatalLog",
    "InputError",
    "InputGradient",
    "Location",
    "ProtoeditError",
    "ValidationReport",
    "validate",
]
