"""The drivers of the file commands, apart from argument parsing: ``format``
(:func:`format_files`, :func:`format_text`), ``check`` (:func:`check_files`) and every rewrite
command (:func:`rewrite_file`: load, rewrite, optionally validate, write or diff)."""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from protoedit.document import Document, loads, message_type_of
from protoedit.errors import Location, ProtoeditError
from protoedit.files import encode, read_source, source_name, write_atomic
from protoedit.lint import findings as lint_findings
from protoedit.net.layers import known_types, registered_types
from protoedit.rewrites import RewriteReport
from protoedit.schema import BUILTIN_PROTO, load_schema
from protoedit.schema.binding import Diagnostic
from protoedit.syntax import canonical, parse
from protoedit.syntax.formatter import format_tree
from protoedit.syntax.parser import ParseError
from protoedit.syntax.tree import detect_newline


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def _print_diff(old: str, new: str, name: str, what: str) -> None:
    """A unified diff of ``name`` before and after (``what``: formatted, rewritten)."""
    sys.stdout.writelines(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            f"{name} (original)",
            f"{name} ({what})",
        )
    )


def format_text(text: str, name: str) -> str:
    """Canonical text for ``text``, with run-time safety nets (a failure is a formatter bug,
    reported as an error before anything is written): the result holds the same fields, the
    same comments in the same order, and formatting it again changes nothing.

    The nets cost no second parse (:mod:`protoedit.syntax.canonical`), and nothing at all
    when the text is already canonical: a result equal to the input parses to the input's
    own tree, so it holds what the input holds and a second pass gives the same result."""
    tree = parse(text, name)
    bom = _BOM if text.startswith(_BOM) else ""  # the formatter drops leading trivia
    formatted = bom + format_tree(tree)
    if formatted == text:
        return formatted
    problem = canonical.problem(tree, formatted[len(bom) :], detect_newline(tree.source))
    if problem is not None:
        raise ProtoeditError(
            f"formatting {problem}; this is a formatter bug, the file was left as is",
            Location(name),
        )
    return formatted


def format_files(
    files: list[str], check: bool, diff: bool, in_place: bool, stdin_name: str | None
) -> int:
    """Format each file (``-``: stdin); see ``protoedit format --help`` for the exit codes.

    ``check`` and ``diff`` only report; ``in_place`` writes (the CLI refuses it with either).
    """
    changed = failed = 0
    for name in files:
        shown = source_name(name, stdin_name)
        try:
            text = read_source(name, shown)
            formatted = format_text(text, shown)
            if formatted != text and in_place and not (check or diff):
                write_atomic(name, formatted)
                _say(f"reformatted {shown}")
        except ProtoeditError as exc:
            _say(f"protoedit: error: {exc}")
            failed += 1
            continue
        if formatted == text:
            if not (check or diff or in_place):
                sys.stdout.write(formatted)
            continue
        changed += 1
        if diff:
            _print_diff(text, formatted, shown, "formatted")
        if check:
            _say(f"would reformat {shown}")
        elif not (diff or in_place):
            sys.stdout.write(formatted)
    if failed:
        return 2
    return 1 if check and changed else 0


def check_files(
    files: list[str],
    strict: bool,
    schema: str | None,
    message_type: str | None,
    stdin_name: str | None = None,
) -> int:
    """Print every finding of every file (``-``: stdin); exit 1 on errors (warnings too with
    ``strict``), 2 when the schema, the message type or a file cannot be read."""
    errors = warnings = unreadable = 0
    try:
        resolved = load_schema(schema)
        if message_type:
            resolved.descriptor(message_type)
    except ProtoeditError as exc:
        hint = " (--type takes a message of the schema, e.g. NetParameter)" if message_type else ""
        _say(f"protoedit: error: {exc}{hint}")
        return 2
    builtin = resolved.path == str(BUILTIN_PROTO)
    accepted = known_types(resolved, builtin)
    unknown_types: set[str] = set()
    for name in files:
        shown = source_name(name, stdin_name)
        try:
            text = read_source(name, shown)
        except ProtoeditError as exc:
            _say(f"protoedit: error: {exc}")
            unreadable += 1
            continue
        try:
            tree = parse(text, shown)
        except ParseError as exc:
            print(f"{exc.location}: E001 {exc.message}")
            errors += 1
            continue
        doc = Document(tree, resolved, message_type_of(tree, resolved, message_type))
        findings = doc.diagnostics()
        if doc.message_type.endswith((".NetParameter", ".SolverParameter")):
            # Lint the net even past schema problems: what fails to bind is left out of it.
            # A file that binds without errors is its own lint document (bound once).
            clean = not any(d.severity == "error" for d in findings)
            lint_doc = (
                doc
                if clean
                else Document(tree, resolved, doc.message_type, lenient=True, best_effort=True)
            )
            findings += list(lint_findings(lint_doc, accepted))
        findings.sort(key=lambda f: f.pos)
        for finding in findings:
            print(doc.describe(finding))
            if finding.code == "E205":
                unknown_types.update(_UNKNOWN_TYPE.findall(finding.message))
            if finding.severity == "error":
                errors += 1
            else:
                warnings += 1
    if unknown_types and builtin:
        _suggest_installed_schema(unknown_types)
    if unreadable:
        return 2
    return 1 if errors or (strict and warnings) else 0


_BOM = "\ufeff"
_UNKNOWN_TYPE = re.compile(r"^unknown layer type '([^']+)'")


def _suggest_installed_schema(unknown: set[str]) -> None:
    """When the installed Caffe (a fork) registers layer types the built-in BVLC list lacks,
    say which and how to check against that Caffe's own schema."""
    from protoedit.caffe import build as caffe_build

    proto = caffe_build.caffe_proto_path()
    if not proto.is_file():
        return
    registered = registered_types(caffe_build.source_dir())
    found = sorted(unknown & registered)
    if found:
        _say(
            f"hint: the installed Caffe registers {', '.join(found)}; check against its schema "
            f"with --proto {proto}"
        )


def rewrite_file(
    name: str,
    rewrite: Callable[[Document], RewriteReport],
    output: str | None,
    in_place: bool,
    diff: bool,
    schema: str | None = None,
    validate_result: bool = False,
    lenient: bool = False,
    flags: Mapping[str, str] | None = None,
    validate_options: Mapping[str, Any] | None = None,
    draw: str | None = None,
) -> int:
    """Load ``name`` (or stdin), apply ``rewrite``, write the result where asked.

    Stdout by default, ``output`` or the file itself with ``in_place``; ``diff`` prints a
    unified diff instead.  The report goes to stderr.  Nothing is written on an error; an
    error that names a missing parameter gets a hint with its option from ``flags``
    (parameter -> ``--flag METAVAR``).  With ``validate_result`` the result also runs
    through :func:`protoedit.validate` (with ``validate_options``; its report on stderr),
    the exit code is the validation's, and ``in_place`` leaves the file alone when the
    validation fails.  With ``lenient``, unknown fields are reported where they survive.
    ``draw`` names a picture (.svg/.png/.pdf) of the change: kept, dropped and added layers.
    """
    doc = None
    unknown: list[Diagnostic] = []
    try:
        text = read_source(name)
        doc = loads(text, schema=schema, lenient=lenient, path="<stdin>" if name == "-" else name)
        unknown = list(doc.warnings)
        report = rewrite(doc)
        result = doc.dumps()
        shown = _result_name(name, output, in_place, diff)
        again = loads(result, schema=schema, lenient=lenient, path=shown)  # still a valid file
        if draw:
            from protoedit.draw import draw_change

            draw_change(loads(text, schema=schema, lenient=lenient, path=name), doc, draw)
        if not diff and (output or in_place) and not validate_result:
            write_atomic(output or name, result)  # first: a report into a closed pipe stops us
    except ProtoeditError as exc:
        for warning in unknown if doc is not None else []:
            _say(f"warning: {doc.describe(warning)}")  # type: ignore[union-attr]
        _say(f"protoedit: error: {exc}")
        hint = _hint(exc, flags or {})
        if hint:
            _say(f"hint: {hint}")
        return 2
    _warn_surviving(doc, again, len(unknown))
    for line in report.lines():
        _say(line)
    code = 0
    if validate_result:
        code = _validate_text(
            result, Path(name).parent if name != "-" else Path("."), **dict(validate_options or {})
        )
        if code and in_place:
            _say(f"protoedit: {name} left as it was: the rewritten net did not validate")
            return code
        if not diff and (output or in_place):
            write_atomic(output or name, result)
    if diff:
        _print_diff(text, result, name, "rewritten")
    elif not (output or in_place):
        sys.stdout.write(result)
    return code


def _warn_surviving(doc: Document, result: Document, before: int) -> None:
    """Warn about the unknown fields that are still in the result (``--lenient``), where the
    input has them; count, not list, the ones that went with removed layers."""
    doc.message  # noqa: B018 - bind the edited tree: its warnings are what survived
    kept = doc.warnings
    if any(w.pos < 0 for w in kept):  # re-rendered text: say where the result has them
        doc, kept = result, result.warnings
    for warning in kept:
        _say(f"warning: {doc.describe(warning)}")
    if before > len(kept):
        gone = before - len(kept)
        _say(
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


def _hint(exc: ProtoeditError, flags: Mapping[str, str]) -> str | None:
    """``pass --stage test-on-test`` for an error that says which parameter would help."""
    needs: Mapping[str, str | None] = getattr(exc, "needs", None) or {}
    options = []
    for parameter, value in needs.items():
        flag = flags.get(parameter)
        if flag is None:
            continue
        options.append(f"{flag.split()[0]} {value}" if value is not None else flag)
    return f"pass {' or '.join(options)}" if options else None


def _validate_text(text: str, folder: Path, **options: Any) -> int:
    """Validate a rewritten net in Caffe (from a temporary file beside the original, so
    relative paths in it still resolve); print the report on stderr.  ``options`` go to
    :func:`protoedit.validate` (weights, random_weights, memory_limit, timeout, ...)."""
    import tempfile

    from protoedit.validate import validate

    with tempfile.TemporaryDirectory(dir=folder if os.access(folder, os.W_OK) else None) as tmp:
        path = Path(tmp) / "rewritten.prototxt"
        path.write_bytes(encode(text))
        report = validate(path, **options)
    _say(report.format_text().replace(str(path), "(rewritten net)"))
    return report.exit_code


__all__ = ["check_files", "format_files", "format_text", "rewrite_file"]
