"""The one exception family of protoedit; every error can carry where it happened."""

from __future__ import annotations

from collections.abc import Mapping
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
    """Base of every error protoedit raises; ``str()`` is ``path:line:col: message``.

    Subclasses carry what a front end needs to say how to fix it as fields, never in the
    message text: :attr:`MissingArgumentError.needs`, :attr:`InvalidArgumentError.argument`.
    """

    def __init__(self, message: str, location: Location | None = None, detail: str = "") -> None:
        self.message = message
        self.location = location
        self.detail = detail  # extra lines (source excerpt with a caret, hints)
        super().__init__(self.__str__())

    def __reduce__(self) -> tuple[object, ...]:
        # Rebuild from the attributes, not from ``args``: subclasses take other arguments, and
        # an error must survive pickling (e.g. when raised in a process pool).
        return (_rebuild, (type(self), self.args), self.__dict__)

    def __str__(self) -> str:
        head = f"{self.location}: {self.message}" if self.location else self.message
        return f"{head}\n{self.detail}" if self.detail else head

    def remedy(self, options: Mapping[str, str] | None = None) -> str:
        """What would fix the error, naming for each library parameter ``options[name]`` (a
        front end's own option, e.g. ``--stage S``) or else the keyword ``name=``; ``""``
        when nothing is known."""
        return ""


def _rebuild(cls: type[ProtoeditError], args: tuple[object, ...]) -> ProtoeditError:
    """An empty instance of ``cls``; pickle then restores its attributes."""
    error = cls.__new__(cls)
    error.args = args
    return error


class ProtoeditWarning(UserWarning):
    """Base of every warning protoedit gives (through :mod:`warnings`); its message is one
    line, which a front end prints as it is."""


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


class MissingArgumentError(InputError):
    """A rewrite cannot go on without a value it cannot derive from the file.

    ``needs`` maps each parameter that would supply it (any one of them does) to a suggested
    value, or ``None`` when there is nothing to suggest; a front end turns the parameter
    names into its own options.
    """

    def __init__(
        self,
        message: str,
        needs: dict[str, str | None],
        location: Location | None = None,
        detail: str = "",
    ) -> None:
        self.needs = needs
        super().__init__(message, location, detail)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.needs, self.location, self.detail))

    def remedy(self, options: Mapping[str, str] | None = None) -> str:
        """``pass --shape N,C,H,W or --input-channels C`` (with ``options``), or ``pass
        shape= or input_channels=`` for a Python caller (suggested values included)."""
        named = []
        for parameter, value in self.needs.items():
            if options is None:
                named.append(f"{parameter}={'' if value is None else repr(value)}")
            elif parameter in options:
                flag = options[parameter]
                named.append(flag if value is None else f"{flag.split()[0]} {value}")
        return f"pass {' or '.join(named)}" if named else ""

    def renamed(self, names: dict[str, str]) -> MissingArgumentError:
        """The same error with parameters renamed: a recipe that passes a value on to a
        step under another name reports its own parameter."""
        needs = {names.get(key, key): value for key, value in self.needs.items()}
        return MissingArgumentError(self.message, needs, self.location, self.detail)


class BrokenResultError(MissingArgumentError):
    """A rewrite's result would not load in Caffe (``findings``: its lint errors); nothing
    is written.  ``needs`` says what would fix it, when that is known."""

    def __init__(
        self,
        message: str,
        findings: list[str],
        needs: dict[str, str | None] | None = None,
        location: Location | None = None,
    ) -> None:
        self.findings = findings
        super().__init__(message, needs or {}, location, "\n".join(f"  {f}" for f in findings))

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.findings, self.needs, self.location))


class InvalidArgumentError(InputError):
    """A value given for the library parameter ``argument`` is out of range or of the wrong
    form (a channel past the last, a batch of 0); a front end names its own option for it
    (the CLI: ``channel 10 is out of range: ... (--class)``)."""

    def __init__(
        self, message: str, argument: str, location: Location | None = None, detail: str = ""
    ) -> None:
        self.argument = argument
        super().__init__(message, location, detail)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.argument, self.location, self.detail))
