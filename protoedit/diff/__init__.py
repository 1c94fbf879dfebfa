"""The semantic diff of two nets (:func:`diff_docs`) and its text and JSON forms."""

from protoedit.diff.compare import (
    FieldChange,
    LayerChange,
    LayerEntry,
    Move,
    NetDiff,
    TextChange,
    diff_docs,
)
from protoedit.diff.report import SAME, format_text, summary, to_json

__all__ = [
    "SAME",
    "FieldChange",
    "LayerChange",
    "LayerEntry",
    "Move",
    "NetDiff",
    "TextChange",
    "diff_docs",
    "format_text",
    "summary",
    "to_json",
]
