"""Where the Lark grammars live (``prototxt.lark`` for text format, ``proto.lark`` for schemas)."""

from pathlib import Path

GRAMMARS = Path(__file__).resolve().parent
