"""The syntax layer: protobuf text format <-> lossless tree.  Knows nothing about Caffe."""

from protoedit.syntax.parser import ParseError, parse
from protoedit.syntax.printer import render
from protoedit.syntax.tree import Block, Document, Field, ListValue, Scalar, Tok

__all__ = [
    "Block",
    "Document",
    "Field",
    "ListValue",
    "ParseError",
    "Scalar",
    "Tok",
    "parse",
    "render",
]
