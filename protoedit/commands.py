"""What the ``format`` and ``check`` commands do, apart from argument parsing."""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from protoedit.document import Document, loads, message_type_of, read_text, write_atomic
from protoedit.errors import Location, ProtoeditError
from protoedit.lint import CAFFE_LAYER_TYPES, net_findings
from protoedit.rewrites import RewriteReport
from protoedit.schema import BUILTIN_PROTO, load_schema
from protoedit.syntax import parse
from protoedit.syntax.formatter import format_tree
from protoedit.syntax.parser import ParseError
from protoedit.syntax.printer import comments
from protoedit.syntax.tree import Block, Field, ListValue, Scalar


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def format_text(text: str, name: str) -> str:
    """Canonical text for ``text``, with run-time safety nets (a failure is a formatter bug,
    reported as an error before anything is written): the result holds the same fields, the
    same comments in the same order, and formatting it again changes nothing."""
    tree = parse(text, name)
    formatted = format_tree(tree)
    again = parse(formatted, name)
    problem = None
    if _shape(again.fields) != _shape(tree.fields):
        problem = "would change the content"
    elif comments(again.fields, again.end) != comments(tree.fields, tree.end):
        problem = "would lose or reorder comments"
    elif format_tree(again) != formatted:
        problem = "is not stable (a second pass would change the result)"
    if problem is not None:
        raise ProtoeditError(
            f"formatting {problem}; this is a formatter bug, the file was left as is",
            Location(name),
        )
    return formatted


def _shape(fields: list[Field]) -> list[object]:
    """Names and raw values in document order, brackets as markers: equal shapes mean equal
    content.  A list of messages counts as the repeated field written out.  Iterative, so
    any nesting depth is fine."""
    out: list[object] = []
    stack: list[Iterator[Field | tuple[str, object] | str]] = [iter(fields)]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
        elif not isinstance(entry, Field):
            out.append(entry)
        elif isinstance(entry.value, Scalar):
            out.append((entry.name.text, entry.value.raw))
        else:
            name = entry.name.text
            value = entry.value
            blocks = [value] if isinstance(value, Block) else value.items
            parts: list[Field | tuple[str, object] | str] = []
            for item in blocks:
                if isinstance(item, Block):
                    parts += [(name, "{"), *item.fields, "}"]
            if isinstance(value, ListValue):
                scalars = [item.raw for item in value.items if isinstance(item, Scalar)]
                if scalars or not value.items:
                    parts.append((name, scalars))
            stack.append(iter(parts))
    return out


def format_files(
    files: list[str], check: bool, diff: bool, in_place: bool, stdin_name: str | None
) -> int:
    """Format each file; see ``protoedit format --help`` for the exit codes."""
    changed = failed = 0
    for name in files:
        is_stdin = name == "-"
        shown = (stdin_name or "<stdin>") if is_stdin else name
        try:
            text = sys.stdin.read() if is_stdin else read_text(name)
            formatted = format_text(text, shown)
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
        elif in_place and not is_stdin:
            write_atomic(Path(name), formatted)
            _say(f"reformatted {shown}")
        elif not diff:
            sys.stdout.write(formatted)
    if failed:
        return 2
    return 1 if check and changed else 0


def check_files(
    files: list[str], strict: bool, schema: str | None, message_type: str | None
) -> int:
    """Print every finding of every file; exit 1 on errors (warnings too with ``strict``)."""
    errors = warnings = unreadable = 0
    try:
        resolved = load_schema(schema)
    except ProtoeditError as exc:
        _say(f"protoedit: error: {exc}")
        return 2
    known_types = CAFFE_LAYER_TYPES if resolved.path == str(BUILTIN_PROTO) else None
    for name in files:
        try:
            text = read_text(name)
        except ProtoeditError as exc:
            _say(f"protoedit: error: {exc}")
            unreadable += 1
            continue
        try:
            tree = parse(text, name)
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
            if finding.severity == "error":
                errors += 1
            else:
                warnings += 1
    if unreadable:
        return 2
    return 1 if errors or (strict and warnings) else 0


def rewrite_file(
    name: str,
    rewrite: Callable[[Document], RewriteReport],
    output: str | None,
    in_place: bool,
    diff: bool,
    schema: str | None = None,
    validate_result: bool = False,
    lenient: bool = False,
) -> int:
    """Load ``name`` (or stdin), apply ``rewrite``, write the result where asked.

    Stdout by default, ``output`` or the file itself with ``in_place``; ``diff`` prints a
    unified diff instead.  The report goes to stderr.  Nothing is written on an error.
    With ``validate_result`` the result also runs through :func:`protoedit.validate` (its
    report on stderr) and the exit code is the validation's.
    """
    try:
        text = sys.stdin.read() if name == "-" else read_text(name)
        doc = loads(text, schema=schema, lenient=lenient, path="<stdin>" if name == "-" else name)
        for warning in doc.warnings:
            _say(f"warning: {doc.describe(warning)}")
        report = rewrite(doc)
        result = doc.dumps()
        loads(result, schema=schema, lenient=lenient, path=name)  # still a valid file
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
    elif in_place and name != "-":
        write_atomic(Path(name), result)
    elif output:
        write_atomic(Path(output), result)
    else:
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
        path.write_text(text, encoding="utf-8")
        report = validate(path)
    _say(report.format_text().replace(str(path), "(rewritten net)"))
    return report.exit_code


__all__ = ["check_files", "format_files", "format_text", "rewrite_file"]
