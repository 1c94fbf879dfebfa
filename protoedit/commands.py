"""What the ``format`` and ``check`` commands do, apart from argument parsing."""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from protoedit.document import Document, loads, message_type_of
from protoedit.errors import ProtoeditError
from protoedit.files import encode, read_source, source_name, write_atomic
from protoedit.lint import CAFFE_LAYER_TYPES, net_findings
from protoedit.rewrites import RewriteReport
from protoedit.schema import BUILTIN_PROTO, load_schema
from protoedit.syntax import parse
from protoedit.syntax.formatter import format_tree
from protoedit.syntax.parser import ParseError
from protoedit.syntax.tree import Block, Field, Scalar


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def format_text(text: str, name: str) -> str:
    """Canonical text for ``text``; checks that the result parses to the same fields."""
    tree = parse(text, name)
    bom = _BOM if text.startswith(_BOM) else ""  # the formatter drops leading trivia
    formatted = bom + format_tree(tree)
    again = parse(formatted, name)
    if _shape(again.fields) != _shape(tree.fields):  # pragma: no cover - a formatter bug
        raise ProtoeditError(f"{name}: formatting would change the content; file left as is")
    return formatted


def _shape(fields: list[Field]) -> list[object]:
    """Names and raw values, nested: equal shapes mean equal content."""
    out: list[object] = []
    for field in fields:
        value = field.value
        if isinstance(value, Scalar):
            out.append((field.name.text, value.raw))
        elif isinstance(value, Block):
            out.append((field.name.text, _shape(value.fields)))
        else:
            for item in value.items:
                if isinstance(item, Block):
                    out.append((field.name.text, _shape(item.fields)))
            scalars = [item.raw for item in value.items if isinstance(item, Scalar)]
            if scalars or not value.items:
                out.append((field.name.text, scalars))
    return out


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
            sys.stdout.writelines(difflib.unified_diff(
                text.splitlines(keepends=True), formatted.splitlines(keepends=True),
                f"{shown} (original)", f"{shown} (formatted)",
            ))  # fmt: skip
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
    known_types = CAFFE_LAYER_TYPES if builtin else None
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
        if doc.message_type.endswith(".NetParameter"):
            # Lint the net even past unknown fields: bind leniently for that pass.
            lint_doc = Document(tree, resolved, doc.message_type, lenient=True)
            if not any(d.severity == "error" for d in lint_doc.diagnostics()):
                findings += list(net_findings(lint_doc, known_types))
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
_REGISTERED = re.compile(r"^[ \t]*REGISTER_LAYER_(?:CLASS|CREATOR)\(\s*(\w+)", re.MULTILINE)


def _suggest_installed_schema(unknown: set[str]) -> None:
    """When the installed Caffe (a fork) registers layer types the built-in BVLC list lacks,
    say which and how to check against that Caffe's own schema."""
    from protoedit import caffe_build

    proto = caffe_build.caffe_proto_path()
    if not proto.is_file():
        return
    registered = installed_layer_types(caffe_build.source_dir())
    found = sorted(unknown & registered)
    if found:
        _say(
            f"hint: the installed Caffe registers {', '.join(found)}; check against its schema "
            f"with --proto {proto}"
        )


def installed_layer_types(source: Path) -> frozenset[str]:
    """The layer types a Caffe source tree registers (``REGISTER_LAYER_CLASS``/``_CREATOR``
    lines, commented-out ones excluded): what ``type:`` names its layer factory accepts."""
    types: set[str] = set()
    for path in sorted((source / "src" / "caffe").rglob("*.c[pu]*")):
        if path.suffix in (".cpp", ".cu"):
            types.update(_REGISTERED.findall(path.read_text(encoding="utf-8", errors="replace")))
    return frozenset(types)


def rewrite_file(
    name: str,
    rewrite: Callable[[Document], RewriteReport],
    output: str | None,
    in_place: bool,
    diff: bool,
    schema: str | None = None,
    validate_result: bool = False,
    lenient: bool = False,
    draw: str | None = None,
) -> int:
    """Load ``name`` (or stdin), apply ``rewrite``, write the result where asked.

    Stdout by default, ``output`` or the file itself with ``in_place``; ``diff`` prints a
    unified diff instead.  The report goes to stderr.  Nothing is written on an error.
    With ``validate_result`` the result also runs through :func:`protoedit.validate` (its
    report on stderr) and the exit code is the validation's.  ``draw`` names a picture
    (.svg/.png/.pdf) of the change: kept, dropped and added layers.
    """
    try:
        text = read_source(name)
        doc = loads(text, schema=schema, lenient=lenient, path="<stdin>" if name == "-" else name)
        for warning in doc.warnings:
            _say(f"warning: {doc.describe(warning)}")
        report = rewrite(doc)
        result = doc.dumps()
        loads(result, schema=schema, lenient=lenient, path=name)  # still a valid file
        if draw:
            from protoedit.draw import draw_change

            draw_change(loads(text, schema=schema, lenient=lenient, path=name), doc, draw)
        if not diff and (output or in_place):  # first: a report into a closed pipe stops us
            write_atomic(output or name, result)
    except ProtoeditError as exc:
        _say(f"protoedit: error: {exc}")
        return 2
    for line in report.lines():
        _say(line)
    if diff:
        sys.stdout.writelines(difflib.unified_diff(
            text.splitlines(keepends=True), result.splitlines(keepends=True),
            f"{name} (original)", f"{name} (rewritten)",
        ))  # fmt: skip
    elif not (output or in_place):
        sys.stdout.write(result)
    if validate_result:
        return _validate_text(result, Path(name).parent if name != "-" else Path("."))
    return 0


def _validate_text(text: str, folder: Path) -> int:
    """Validate a rewritten net in Caffe (from a temporary file beside the original, so
    relative paths in it still resolve); print the report on stderr."""
    import tempfile

    from protoedit.validate import validate

    with tempfile.TemporaryDirectory(dir=folder if os.access(folder, os.W_OK) else None) as tmp:
        path = Path(tmp) / "rewritten.prototxt"
        path.write_bytes(encode(text))
        report = validate(path)
    _say(report.format_text().replace(str(path), "(rewritten net)"))
    return report.exit_code


__all__ = ["check_files", "format_files", "format_text", "rewrite_file"]
