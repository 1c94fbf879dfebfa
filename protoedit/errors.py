"""The one exception family of protoedit; every error can carry where it happened."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A place in a file: 1-based line and column; ``path`` may be ``<string>`` or ``-``."""

    path: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.path
        if self.column <= 0:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.column}"


class ProtoeditError(Exception):
    """Base of every error protoedit raises; ``str()`` is ``path:line:col: message``."""

    def __init__(self, message: str, location: Location | None = None, detail: str = "") -> None:
        self.message = message
        self.location = location
        self.detail = detail  # extra lines (source excerpt with a caret, hints)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        head = f"{self.location}: {self.message}" if self.location else self.message
        return f"{head}\n{self.detail}" if self.detail else head


class InputError(ProtoeditError):
    """A file could not be read, or an argument names something that does not exist."""


class CaffeUnavailableError(ProtoeditError):
    """pycaffe cannot be imported in the child process (not built or not installed)."""


def excerpt(source: str, line: int, col: int) -> str:
    """The source line and a caret under ``col`` (tabs kept so the caret lines up): the
    ``detail`` of an error located in a text file."""
    lines = source.splitlines()
    if not 1 <= line <= len(lines):
        return ""
    text = lines[line - 1]
    pad = "".join("\t" if ch == "\t" else " " for ch in text[: col - 1])
    return f"  {text}\n  {pad}^"
