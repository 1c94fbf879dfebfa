"""``protoedit draw`` (a net, or a change) and ``protoedit diff`` (also as a git driver)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from protoedit.cli.options import Commands, add_output, add_schema
from protoedit.files import STDIN

if TYPE_CHECKING:
    from protoedit.errors import ProtoeditError


def _add_phase(cmd: argparse.ArgumentParser, what: str) -> None:
    cmd.add_argument("--phase", choices=["TEST", "TRAIN"], type=str.upper, help=what)


def add_draw(commands: Commands) -> None:
    """``protoedit draw``."""
    cmd = commands.add_parser(
        "draw",
        help="draw a net (or a change, with --before/--after) with Graphviz",
        description="Draw NET with Graphviz's dot: layers as nodes with their key parameters, "
        "blobs as edges with their inferred shapes, in-place layers folded into the layer "
        "they follow. With --before OLD --after NEW, one picture of the change: dropped layers "
        "grey and dashed, added ones highlighted. Exit 0, 2 on error.",
    )
    cmd.add_argument("net", nargs="?", metavar="NET", help="a .prototxt, or - for stdin")
    cmd.add_argument("--before", metavar="OLD", help="the net before a change (with --after)")
    cmd.add_argument("--after", metavar="NEW", help="the net after the change (with --before)")
    add_output(
        cmd,
        "PICTURE",
        "write here; the format by extension: .svg, .png, .pdf, .dot (default: SVG on stdout)",
    )
    cmd.add_argument(
        "--rankdir",
        choices=["TB", "LR"],
        default="TB",
        type=str.upper,
        help="top to bottom (default) or left to right",
    )
    cmd.add_argument(
        "--summary",
        action="store_true",
        help="also show each node's output shape, parameters and FLOPs (as protoedit summary)",
    )
    cmd.add_argument(
        "--phase",
        choices=["TEST", "TRAIN", "ALL"],
        default="TEST",
        type=str.upper,
        help="draw the layers Caffe builds in this phase (default TEST, as the other commands; "
        "ALL: every layer)",
    )
    add_schema(cmd, lenient="tolerate fields the schema lacks (not drawn)")
    cmd.set_defaults(run=run_draw, usage_error=cmd.error)


def run_draw(args: argparse.Namespace) -> int:
    """Load the net (or both sides of a change), draw it, write the picture or print the SVG."""
    from protoedit.document import loads
    from protoedit.draw import change_graph, net_graph, output_format, render
    from protoedit.files import read_source

    change = args.before is not None or args.after is not None
    if change and (args.before is None or args.after is None or args.net is not None):
        args.usage_error("give NET, or --before OLD and --after NEW")
    if not change and args.net is None:
        args.usage_error("give NET, or --before OLD and --after NEW")
    fmt = output_format(args.output) if args.output else "svg"

    def load(name: str) -> Any:
        path = "<stdin>" if name == STDIN else name
        return loads(read_source(name), schema=args.proto, lenient=args.lenient, path=path)

    phase = None if args.phase == "ALL" else args.phase
    if change:
        graph = change_graph(load(args.before), load(args.after), phase, summary=args.summary)
    else:
        graph = net_graph(load(args.net), phase, summary=args.summary)
    picture = render(graph, fmt, args.rankdir)
    if args.output:
        from pathlib import Path

        Path(args.output).write_bytes(picture)
    elif hasattr(sys.stdout, "buffer"):
        sys.stdout.buffer.write(picture)
    else:  # a text stream without bytes underneath (tests, embedding)
        sys.stdout.write(picture.decode("utf-8"))
    return 0


def add_diff(commands: Commands) -> None:
    """``protoedit diff``."""
    cmd = commands.add_parser(
        "diff",
        help="semantic diff of two nets: layers added, removed, changed, rewired, moved",
        description="Compare two nets by content: layers matched by name, fields by value (with "
        "path:line on both sides), legacy files upgraded in memory first; layout and comments "
        "are ignored unless --text. Exit 0 same, 1 different, 2 error. As a git diff driver: "
        "`git config diff.protoedit.command 'protoedit diff --git'` and `*.prototxt "
        "diff=protoedit` in .gitattributes.",
    )
    cmd.add_argument("files", nargs="+", metavar="FILE", help="OLD NEW (- for stdin)")
    cmd.add_argument("--json", action="store_true", help="print one JSON object")
    cmd.add_argument("--text", action="store_true", help="also report layout and comment changes")
    _add_phase(cmd, "compare only the layers Caffe builds in this phase")
    add_schema(cmd, lenient="tolerate fields the schema lacks (not compared)")
    cmd.add_argument(
        "--git",
        action="store_true",
        help="take git's external-diff arguments (PATH OLD HEX MODE NEW HEX MODE); exit 0",
    )
    cmd.set_defaults(run=run_diff, usage_error=cmd.error)


def run_diff(args: argparse.Namespace) -> int:
    """Two files, or git's external-diff arguments with ``--git``; exit as ``diff`` does."""
    from protoedit.diff import diff_docs, format_text, to_json
    from protoedit.document import loads
    from protoedit.errors import ProtoeditError
    from protoedit.files import read_source

    files = list(args.files)
    if args.git:
        if len(files) == 1:  # an unmerged path: git has nothing to compare
            print(f"* unmerged: {files[0]}")
            return 0
        if len(files) not in (7, 9):
            args.usage_error(f"--git takes git's 7 or 9 external-diff arguments, got {len(files)}")
        path = files[0]
        new_path = files[7] if len(files) == 9 else path
        sources = [(files[1], f"a/{path}"), (files[4], f"b/{new_path}")]
        print(f"diff --protoedit a/{path} b/{new_path}")
    else:
        if len(files) != 2:
            args.usage_error(f"expected OLD NEW, got {len(files)} file(s)")
        sources = [(name, "<stdin>" if name == STDIN else name) for name in files]
    # git names an absent side (an added or deleted file) /dev/null: no file, an empty net
    texts = ["" if args.git and name == "/dev/null" else read_source(name) for name, _ in sources]
    try:
        old, new = (
            loads(text, schema=args.proto, lenient=args.lenient, path=shown)
            for text, (_, shown) in zip(texts, sources, strict=True)
        )
        result = diff_docs(old, new, text=args.text, phase=args.phase, costs=True)
    except ProtoeditError as exc:
        if not args.git:
            raise
        return _git_line_diff(texts, [shown for _, shown in sources], exc)
    print(to_json(result) if args.json else format_text(result), end="" if not args.json else "\n")
    if args.git:
        return 0
    return 0 if result.same else 1


def _git_line_diff(texts: list[str], names: list[str], exc: ProtoeditError) -> int:
    """The git driver's fallback for a file that does not load (git stops at a failing
    driver): say why on stdout, in git's output, then show a line diff."""
    import difflib

    print(f"protoedit: {str(exc).splitlines()[0]} (a line diff follows)")
    sys.stdout.writelines(
        difflib.unified_diff(
            texts[0].splitlines(keepends=True),
            texts[1].splitlines(keepends=True),
            names[0],
            names[1],
        )
    )
    return 0
