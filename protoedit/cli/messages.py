"""How the command line reports an error: the message with its caret lines, and a hint
built from the error's structured fields, naming the options of the command in use."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Mapping

from protoedit.errors import InvalidArgumentError, ProtoeditError


def say(line: str) -> None:
    """One line on stderr (reports, warnings, notes)."""
    print(line, file=sys.stderr)


def flags_of(args: argparse.Namespace) -> Mapping[str, str]:
    """Library parameter -> the option of this command that sets it (see ``options.hints``)."""
    flags = getattr(args, "flags", None)
    if callable(flags):
        return dict(flags(args))
    return dict(flags or {})


def print_error(exc: ProtoeditError, flags: Mapping[str, str]) -> None:
    """``protoedit: error: path:line:col: message (--option)`` with the source line and
    caret under it, then ``hint: pass --stage S`` when the error says what would help."""
    text = str(exc)
    if isinstance(exc, InvalidArgumentError) and exc.argument in flags:
        head, newline, detail = text.partition("\n")
        text = f"{head} ({flags[exc.argument].split()[0]}){newline}{detail}"
    say(f"protoedit: error: {text}")
    hint = exc.remedy(flags)
    if hint:
        say(f"hint: {hint}")


def print_internal_error(command: str, exc: Exception) -> None:
    """A short report of a bug: the command, the exception and where it was raised (the
    whole traceback with ``PROTOEDIT_TRACEBACK=1``)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"\n  raised at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}"
    say(
        f"protoedit: internal error in `protoedit {command}`: {type(exc).__name__}: {exc}"
        f"{where if frames else ''}\n"
        f"  protoedit {version()}, Python {sys.version.split()[0]}; please report this (the "
        "command line and, if you can, the input file; PROTOEDIT_TRACEBACK=1 shows the "
        "traceback)"
    )
    if os.environ.get("PROTOEDIT_TRACEBACK"):
        traceback.print_exception(exc, file=sys.stderr)


def version() -> str:
    """protoedit's version from the installed package's metadata (no heavy imports)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("protoedit")
    except PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
        return "unknown (not installed)"
