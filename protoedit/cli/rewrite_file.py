"""The driver of every rewrite command: load, rewrite, optionally validate, write or diff."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protoedit.cli.format_check import print_diff
from protoedit.cli.messages import say

if TYPE_CHECKING:
    from protoedit.document import Document
    from protoedit.rewrites import RewriteReport


def rewrite_file(
    name: str,
    rewrite: Callable[[Document], RewriteReport],
    *,
    output: str | None,
    in_place: bool,
    diff: bool,
    schema: str | None = None,
    lenient: bool = False,
    validate_options: Mapping[str, Any] | None = None,
    draw: str | None = None,
) -> int:
    """Load ``name`` (or stdin), apply ``rewrite``, write the result where asked.

    Stdout by default, ``output`` or the file itself with ``in_place``; ``diff`` prints a
    unified diff instead.  The report goes to stderr.  Nothing is written on an error (it
    goes to the error boundary, after the warnings about unknown fields).  With
    ``validate_options`` the result also runs through :func:`protoedit.validate_net` (with
    them; its report on stderr), the exit code is the validation's, and ``in_place`` leaves
    the file alone when the validation fails.  With ``lenient``, unknown fields are reported
    where they survive.  ``draw`` names a picture (.svg/.png/.pdf) of the change.
    """
    from protoedit.document import loads
    from protoedit.errors import ProtoeditError, ProtoeditWarning
    from protoedit.files import read_source, write_atomic

    doc = None
    try:
        text = read_source(name)
        doc = loads(text, schema=schema, lenient=lenient, path="<stdin>" if name == "-" else name)
        unknown = list(doc.warnings)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ProtoeditWarning)
            try:
                report = rewrite(doc)
            finally:
                say_warnings(caught)
        result = doc.dumps()
        shown = _result_name(name, output, in_place, diff)
        again = loads(result, schema=schema, lenient=lenient, path=shown)  # still a valid file
        if draw:
            from protoedit.draw import draw_change

            draw_change(loads(text, schema=schema, lenient=lenient, path=name), doc, draw)
        if not diff and (output or in_place) and validate_options is None:
            write_atomic(output or name, result)  # first: a report into a closed pipe stops us
    except ProtoeditError:
        for warning in unknown if doc is not None else []:
            say(f"warning: {doc.describe(warning)}")  # type: ignore[union-attr]
        raise
    _warn_surviving(doc, again, len(unknown))
    for line in report.lines():
        say(line)
    code = 0
    if validate_options is not None:
        code = _validate_text(
            result, Path(name).parent if name != "-" else Path("."), **validate_options
        )
        if code and in_place:
            say(f"protoedit: {name} left as it was: the rewritten net did not validate")
            return code
        if not diff and (output or in_place):
            write_atomic(output or name, result)
    if diff:
        print_diff(text, result, name, "rewritten")
    elif not (output or in_place):
        sys.stdout.write(result)
    return code


def say_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Our warnings as one line each on stderr (each once); any other as Python shows it.

    Called while ``caught`` still records (inside ``catch_warnings(record=True)``), so it
    reads a copy and writes to stderr itself: ``warnings.showwarning`` would append to the
    list being read, for ever.
    """
    from protoedit.errors import ProtoeditWarning

    said: set[str] = set()
    for warning in list(caught):
        if issubclass(warning.category, ProtoeditWarning):
            line = f"protoedit: warning: {warning.message}"
            if line not in said:
                say(line)
            said.add(line)
        else:
            sys.stderr.write(
                warnings.formatwarning(
                    warning.message, warning.category, warning.filename, warning.lineno
                )
            )


def _warn_surviving(doc: Document, result: Document, before: int) -> None:
    """Warn about the unknown fields that are still in the result (``--lenient``), where the
    input has them; count, not list, the ones that went with removed layers."""
    doc.message  # noqa: B018 - bind the edited tree: its warnings are what survived
    kept = doc.warnings
    if any(w.pos < 0 for w in kept):  # re-rendered text: say where the result has them
        doc, kept = result, result.warnings
    for warning in kept:
        say(f"warning: {doc.describe(warning)}")
    if before > len(kept):
        gone = before - len(kept)
        say(
            f"note: {gone} unknown field{'s' if gone != 1 else ''} of the input went with "
            "the layers the rewrite removed"
        )


def _result_name(name: str, output: str | None, in_place: bool, diff: bool) -> str:
    """What to call the rewritten text in messages about it."""
    if diff:
        return f"{name} (rewritten)"
    if in_place and name != "-":
        return name
    return output or "<stdout>"


def _validate_text(text: str, folder: Path, **options: Any) -> int:
    """Validate a rewritten net in Caffe (from a temporary file beside the original, so
    relative paths in it still resolve); print the report on stderr.  ``options`` go to
    :func:`protoedit.validate_net` (weights, random_weights, memory_limit, timeout, ...)."""
    import tempfile

    from protoedit.cli.validate import VALIDATE_HINTS
    from protoedit.files import encode
    from protoedit.validate import validate_net

    with tempfile.TemporaryDirectory(dir=folder if os.access(folder, os.W_OK) else None) as tmp:
        path = Path(tmp) / "rewritten.prototxt"
        path.write_bytes(encode(text))
        report = validate_net(path, **options)
    say(report.format_text().replace(str(path), "(rewritten net)"))
    hint = report.remedy(VALIDATE_HINTS)
    if hint:
        say(f"hint: {hint}")
    return report.exit_code
