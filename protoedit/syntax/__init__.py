"""The syntax layer: protobuf text format <-> lossless tree.  Knows nothing about Caffe."""

from protoedit.syntax.edit import parse_fields
from protoedit.syntax.parser import ParseError, parse
from protoedit.syntax.printer import render
from protoedit.syntax.tree import Block, Field, ListValue, Scalar, Tok, Tree

__all__ = [
    "Block",
    "Field",
    "ListValue",
    "ParseError",
    "Scalar",
    "Tok",
    "Tree",
    "parse",
    "parse_fields",
    "render",
]
