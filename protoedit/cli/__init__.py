"""The ``protoedit`` command line: the parser of every command and the one error boundary.

Each command family has its module (its options and its driver, thin over the library);
:mod:`~protoedit.cli.options` spells the options they share once, and every error ends in
:func:`main`, which prints it with its caret line and a hint in this command's terms.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from protoedit.cli.draw_diff import add_diff, add_draw
from protoedit.cli.explain import add_grad, add_visualize
from protoedit.cli.export import add_export
from protoedit.cli.format_check import add_check, add_format
from protoedit.cli.messages import flags_of, print_error, print_internal_error, say, version
from protoedit.cli.rewrites import add_rewrites
from protoedit.cli.saliency import add_saliency
from protoedit.cli.setup_caffe import add_setup_caffe
from protoedit.cli.summary import add_summary
from protoedit.cli.sweep import EXIT_INTERRUPTED, add_sweep
from protoedit.cli.units import add_top_images
from protoedit.cli.validate import add_validate
from protoedit.cli.weights import add_weights_commands
from protoedit.errors import ProtoeditError
from protoedit.files import STDIN

#: Exit codes of :func:`main` beyond a command's own 0 (success) and 1 (check failed).
EXIT_ERROR = 2
EXIT_INTERNAL = 123  # as Black: a bug in protoedit, never to be read as "check failed"
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what `yes | head -1` reports for `yes`
# EXIT_INTERRUPTED = 130: 128 + SIGINT, what a shell reports for Ctrl-C


class _VersionAction(argparse.Action):
    """``--version``: print and exit; the metadata is read only when asked for."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(f"protoedit {version()}")
        parser.exit()


class _Parser(argparse.ArgumentParser):
    """A usage error is one line, as every other error (``-h`` shows the usage)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser: argparse.ArgumentParser = _Parser(
        prog="protoedit",
        description="Parse, rewrite and validate Caffe .prototxt files.",
        epilog="Exit codes: 0 success, 1 check or validation failed, 2 error (bad input or "
        "arguments), 123 internal error (a bug: please report it), 130 interrupted (Ctrl-C), "
        "141 the reader of the output went away.",
    )
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        add_format,
        add_check,
        add_rewrites,
        add_validate,
        add_setup_caffe,
        add_grad,
        add_saliency,
        add_visualize,
        add_top_images,
        add_draw,
        add_diff,
        add_summary,
        add_sweep,
        add_weights_commands,
        add_export,
    ):
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code.

    The one error boundary: a :class:`ProtoeditError` is its message (with the source line
    and caret when it has them) and a ``hint:`` from its structured fields, exit 2; an
    ``OSError`` one line, exit 2; any other exception an internal error (a short report,
    exit 123); Ctrl-C exits 130; a reader closing the pipe (``| head``) ends the command
    quietly (141).
    """
    _text_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    _refuse_in_place_stdin(parser, args)
    from protoedit.syntax.allocation import own_process

    owned = own_process()  # the command's process: large loads may pause the collector
    try:
        try:
            code = int(args.run(args))
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
            return code
        except ProtoeditError as exc:
            print_error(exc, flags_of(args))
            return EXIT_ERROR
        except BrokenPipeError:
            raise
        except OSError as exc:
            say(
                f"protoedit: error: {exc.filename}: {exc.strerror}"
                if exc.filename
                else f"protoedit: error: {exc}"
            )
            return EXIT_ERROR
        except Exception as exc:
            print_internal_error(args.command, exc)
            return EXIT_INTERNAL
        except KeyboardInterrupt:
            say("protoedit: error: interrupted")
            return EXIT_INTERRUPTED
    except BrokenPipeError:
        return _quiet_after_broken_pipe()
    finally:
        own_process(owned)  # main() called in-process (tests, scripts) leaves it as found


def _quiet_after_broken_pipe() -> int:
    """The reader of our output went away: point stdout and stderr at /dev/null so nothing
    else fails on the way out (the recipe of Python's ``signal`` docs) and exit as SIGPIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # not a real file (a test's capture)
            os.dup2(devnull, stream.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def _text_streams() -> None:
    """Net text goes to stdout as UTF-8, with the stray bytes :mod:`protoedit.files` kept
    (``surrogateescape``) written back as they were read."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(encoding="utf-8", errors="surrogateescape")


def _refuse_in_place_stdin(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``-i`` with stdin has no file to rewrite: a usage error rather than stdout."""
    if not getattr(args, "in_place", False):
        return
    names = getattr(args, "files", None) or [getattr(args, "file", "-")]
    if STDIN in names:
        parser.error(f"{args.command}: -i/--in-place needs a file, not - (stdin)")


__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_ERROR",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "build_parser",
    "main",
]
