"""``protoedit format`` and ``protoedit check``: their options and their drivers."""

from __future__ import annotations

import argparse
import difflib
import sys
from typing import Any

from protoedit.cli.messages import print_error, say
from protoedit.cli.options import Commands, add_exclude, hints


def print_diff(old: str, new: str, name: str, what: str) -> None:
    """A unified diff of ``name`` before and after (``what``: formatted, rewritten)."""
    sys.stdout.writelines(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            f"{name} (original)",
            f"{name} ({what})",
        )
    )


def add_format(commands: Commands) -> None:
    """``protoedit format``."""
    cmd = commands.add_parser(
        "format",
        help="rewrite files in the canonical layout (comments kept)",
        description="Canonical layout: two-space indentation, one field per line, comments kept "
        "where they belong. Prints one file to stdout unless -i (several need -i, --check or "
        "--diff); a folder stands for the .prototxt and .pbtxt files under it. Exit 0 nothing "
        "to do, 1 --check found changes, 2 error.",
    )
    cmd.add_argument("files", nargs="*", metavar="FILE", help="files or folders, or - for stdin")
    cmd.add_argument("--check", action="store_true", help="only say which files would change")
    cmd.add_argument("--diff", action="store_true", help="print a unified diff of the changes")
    cmd.add_argument(
        "-i", "--in-place", action="store_true", help="rewrite the files (not with --check/--diff)"
    )
    cmd.add_argument("--stdin-filename", metavar="NAME", help="name to use for stdin in messages")
    add_exclude(cmd)
    cmd.set_defaults(run=run_format, usage_error=cmd.error)


def run_format(args: argparse.Namespace) -> int:
    """Check the arguments, find the files, format them."""
    from protoedit.discover import net_files

    if args.in_place and (args.check or args.diff):
        args.usage_error("-i/--in-place cannot be combined with --check or --diff (never written)")
    files = net_files(args.files or ["-"], args.exclude)
    if len(files) > 1 and not (args.in_place or args.check or args.diff):
        args.usage_error(
            f"{len(files)} files would be printed one after another to stdout; give -i to "
            "rewrite them in place, or --check or --diff"
        )
    return format_files(
        files,
        check=args.check,
        diff=args.diff,
        in_place=args.in_place,
        stdin_name=args.stdin_filename,
    )


def format_files(
    files: list[str], *, check: bool, diff: bool, in_place: bool, stdin_name: str | None
) -> int:
    """Format each file (``-``: stdin); see ``protoedit format --help`` for the exit codes.

    ``check`` and ``diff`` only report; ``in_place`` writes (the CLI refuses it with either).
    A file that fails is reported and the others go on.
    """
    from protoedit.errors import ProtoeditError
    from protoedit.files import read_source, source_name, write_atomic
    from protoedit.syntax.formatter import format_text

    changed = failed = 0
    for name in files:
        shown = source_name(name, stdin_name)
        try:
            text = read_source(name, shown)
            formatted = format_text(text, shown)
            if formatted != text and in_place and not (check or diff):
                write_atomic(name, formatted)
                say(f"reformatted {shown}")
        except ProtoeditError as exc:
            print_error(exc, {})
            failed += 1
            continue
        if formatted == text:
            if not (check or diff or in_place):
                sys.stdout.write(formatted)
            continue
        changed += 1
        if diff:
            print_diff(text, formatted, shown, "formatted")
        if check:
            say(f"would reformat {shown}")
        elif not (diff or in_place):
            sys.stdout.write(formatted)
    if failed:
        return 2
    return 1 if check and changed else 0


def add_check(commands: Commands) -> None:
    """``protoedit check``."""
    cmd = commands.add_parser(
        "check",
        help="report syntax, schema and net problems, one line each",
        description="Parse, check against the schema and lint the net. One line per finding: "
        "path:line:col: CODE message. A folder stands for the .prototxt and .pbtxt files under "
        "it. Exit 1 on errors (or on warnings with --strict), 2 when a file cannot be read.",
    )
    cmd.add_argument("files", nargs="+", metavar="FILE", help="files or folders, or - for stdin")
    cmd.add_argument("--strict", action="store_true", help="warnings fail the check too")
    cmd.add_argument("--proto", metavar="PATH", help="a fork's caffe.proto instead of the built-in")
    cmd.add_argument(
        "--type",
        dest="message_type",
        metavar="MESSAGE",
        help="the file's message type (default: NetParameter or SolverParameter by content)",
    )
    cmd.add_argument("--stdin-filename", metavar="NAME", help="name to use for stdin in messages")
    cmd.add_argument(
        "--weights",
        metavar="MODEL.caffemodel",
        help="also check that these weights fit the net (one net): E3xx/W3xx findings",
    )
    add_exclude(cmd)
    hints(cmd, {"message_type": "--type MESSAGE"})
    cmd.set_defaults(run=run_check, usage_error=cmd.error)


def run_check(args: argparse.Namespace) -> int:
    """Find the files and check them."""
    from protoedit.discover import net_files

    files = net_files(args.files, args.exclude)
    if args.weights is not None and len(files) != 1:
        args.usage_error(f"--weights checks one net, not {len(files)} files")
    return check_files(
        files,
        strict=args.strict,
        schema=args.proto,
        message_type=args.message_type,
        stdin_name=args.stdin_filename,
        weights=args.weights,
    )


def check_files(
    files: list[str],
    *,
    strict: bool,
    schema: str | None = None,
    message_type: str | None = None,
    stdin_name: str | None = None,
    weights: str | None = None,
) -> int:
    """Print every finding of every file (``-``: stdin); exit 1 on errors (warnings too with
    ``strict``), 2 when a file cannot be read.  A schema or a message type that cannot be
    read is an error for the boundary (``message_type``'s names ``--type``).  ``weights``: a
    ``.caffemodel`` the (one) net is checked against too, when the net itself has no errors."""
    from protoedit.errors import InputError, InvalidArgumentError, ProtoeditError
    from protoedit.files import read_source, source_name
    from protoedit.lint import check_text
    from protoedit.schema import BUILTIN_PROTO, load_schema

    resolved = load_schema(schema)
    if message_type:
        try:
            resolved.descriptor(message_type)
        except InputError as exc:  # say which option named it (the boundary prints it)
            raise InvalidArgumentError(exc.message, "message_type", exc.location) from None
    builtin = resolved.path == str(BUILTIN_PROTO)
    unknown_types: set[str] = set()
    errors = warnings = unreadable = 0
    for name in files:
        shown = source_name(name, stdin_name)
        try:
            text = read_source(name, shown)
        except ProtoeditError as exc:
            print_error(exc, {})
            unreadable += 1
            continue
        findings = check_text(text, name=shown, schema=resolved, message_type=message_type)
        if weights is not None and not any(f.severity == "error" for f in findings):
            findings += _weights_findings(text, shown, resolved, weights)
        for finding in findings:
            print(finding)
            if finding.code == "E205" and finding.subject:
                unknown_types.add(finding.subject)
            if finding.severity == "error":
                errors += 1
            else:
                warnings += 1
    if unknown_types and builtin:
        _suggest_installed_schema(unknown_types)
    if unreadable:
        return 2
    return 1 if errors or (strict and warnings) else 0


def _weights_findings(text: str, shown: str, schema: Any, weights: str) -> list[Any]:
    """How the weights meet the net (read without their values: cheap on any size)."""
    from protoedit.document import loads
    from protoedit.weights import load
    from protoedit.weights.findings import weights_findings

    doc = loads(text, schema=schema, path=shown)
    return list(weights_findings(doc, load(weights, schema=schema, values=False)))


def _suggest_installed_schema(unknown: set[str]) -> None:
    """When the installed Caffe (a fork) registers layer types the built-in BVLC list lacks,
    say which and how to check against that Caffe's own schema."""
    from protoedit.caffe import build as caffe_build
    from protoedit.net.layers import registered_types

    proto = caffe_build.caffe_proto_path()
    if not proto.is_file():
        return
    registered = registered_types(caffe_build.source_dir())
    found = sorted(unknown & registered)
    if found:
        say(
            f"hint: the installed Caffe registers {', '.join(found)}; check against its schema "
            f"with --proto {proto}"
        )
