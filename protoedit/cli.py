"""The ``protoedit`` command line: thin front ends over the library."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import Any

from protoedit.validate import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT, validate

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str) -> int:
    """``4G``, ``512M``, ``1.5GiB`` or a byte count; ``0`` means no limit."""
    match = _SIZE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 4G or 512M)")
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[unit.lower()])


def _input_pair(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected BLOB=FILE.npy, got {text!r}")
    return name, path


def _add_validate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "validate",
        help="load a net in Caffe, run forward and backward, check the input gradient",
        description="Instantiate NET in Caffe in a child process, fill its inputs, run forward "
        "and backward, and report blob shapes, losses and input gradients. Exit 0 valid, "
        "1 validation failed, 2 could not run.",
    )
    cmd.add_argument("net", metavar="NET.prototxt", help="the net, or - for stdin")
    cmd.add_argument("--weights", metavar="MODEL.caffemodel")
    cmd.add_argument("--phase", choices=["TEST", "TRAIN"], default="TEST", type=str.upper)
    cmd.add_argument("--json", action="store_true", help="print one JSON object")
    cmd.add_argument(
        "--input",
        action="append",
        type=_input_pair,
        default=[],
        metavar="BLOB=FILE.npy",
        help="data for an input blob (others get seeded random data); repeatable",
    )
    cmd.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    cmd.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"kill Caffe after this long (default {DEFAULT_TIMEOUT:g})",
    )
    cmd.add_argument(
        "--memory-limit",
        type=parse_size,
        default=DEFAULT_MEMORY_LIMIT,
        metavar="SIZE",
        help="address-space limit of the Caffe process, e.g. 8G; 0 for none (default 4G)",
    )
    cmd.add_argument(
        "--allow-python-layers",
        action="store_true",
        help='run nets with type: "Python" layers (they execute user code on load)',
    )
    cmd.add_argument(
        "--random-weights",
        action="store_true",
        help="fill every parameter with seeded random values (for a net without weights)",
    )
    cmd.add_argument(
        "--save-gradients",
        metavar="DIR",
        help="write each input gradient to DIR as BLOB.npy and a picture, BLOB.png",
    )
    cmd.set_defaults(run=_run_validate)


def _positive_seconds(text: str) -> float:
    """A timeout: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


#: The remedy for each validation cause, phrased with this command's flags.
_VALIDATE_HINTS = {
    "no_loss": "a deploy net has no loss: `protoedit aux NET --target LAYER` (or `add-loss`) "
    "gives it one whose value is a unit's activation",
    "no_force_backward": "`protoedit force-backward NET` sets 'force_backward: true'",
    "zero_weights": "pass --weights MODEL.caffemodel or --random-weights",
    "python_layers": "pass --allow-python-layers to run them",
    "over_budget": "raise it with --memory-limit (0 for none)",
    "data_layers": "the net reads its data from files: `protoedit to-deploy NET -o "
    "deploy.prototxt` replaces its data layers with an Input layer",
}


def _run_validate(args: argparse.Namespace) -> int:
    from protoedit.document import loads
    from protoedit.errors import CaffeUnavailableError, ProtoeditError

    if sys.stderr.isatty():
        print(f"validating {args.net} in Caffe ...", file=sys.stderr, flush=True)
    try:
        net = loads(sys.stdin.read(), path="-", lenient=True) if args.net == "-" else args.net
        report = validate(
            net,
            weights=args.weights,
            phase=args.phase,
            inputs=dict(args.input),
            seed=args.seed,
            timeout=args.timeout,
            memory_limit=args.memory_limit,
            allow_python_layers=args.allow_python_layers,
            random_weights=args.random_weights,
            save_gradients=args.save_gradients,
        )
    except ProtoeditError as exc:
        print(f"protoedit: error: {exc}", file=sys.stderr)
        if isinstance(exc, CaffeUnavailableError):
            print("hint: `make setup` builds and installs it", file=sys.stderr)
        return 2
    error = report.status == "error"
    if args.json:
        print(report.to_json())
        return report.exit_code
    print(report.format_text(verdict=not error))
    if error:
        print(f"protoedit: error: {report.reason}", file=sys.stderr)
    hint = _VALIDATE_HINTS.get(report.cause, report.hint)
    if hint:
        print(f"hint: {hint}", file=sys.stderr if error else sys.stdout)
    return report.exit_code


def _add_format(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "format",
        help="rewrite files in the canonical layout (comments kept)",
        description="Canonical layout: two-space indentation, one field per line, comments kept "
        "where they belong. Prints to stdout unless -i. Exit 0 nothing to do, 1 --check found "
        "changes, 2 error.",
    )
    cmd.add_argument("files", nargs="*", metavar="FILE", help="files, or - for stdin")
    cmd.add_argument("--check", action="store_true", help="only say which files would change")
    cmd.add_argument("--diff", action="store_true", help="print a unified diff of the changes")
    cmd.add_argument("-i", "--in-place", action="store_true", help="rewrite the files")
    cmd.add_argument("--stdin-filename", metavar="NAME", help="name to use for stdin in messages")
    cmd.set_defaults(run=_run_format)


def _run_format(args: argparse.Namespace) -> int:
    from protoedit.commands import format_files

    return format_files(
        args.files or ["-"],
        check=args.check,
        diff=args.diff,
        in_place=args.in_place,
        stdin_name=args.stdin_filename,
    )


def _add_check(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "check",
        help="report syntax, schema and net problems, one line each",
        description="Parse, check against the schema and lint the net. One line per finding: "
        "path:line:col: CODE message. Exit 1 on errors (or on warnings with --strict), "
        "2 when a file cannot be read.",
    )
    cmd.add_argument("files", nargs="+", metavar="FILE")
    cmd.add_argument("--strict", action="store_true", help="warnings fail the check too")
    cmd.add_argument("--proto", metavar="PATH", help="a fork's caffe.proto instead of the built-in")
    cmd.add_argument(
        "--type",
        dest="message_type",
        metavar="MESSAGE",
        help="the file's message type (default: NetParameter or SolverParameter by content)",
    )
    cmd.set_defaults(run=_run_check)


def _run_check(args: argparse.Namespace) -> int:
    from protoedit.commands import check_files

    return check_files(
        args.files, strict=args.strict, schema=args.proto, message_type=args.message_type
    )


def _rewrite_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help: str
) -> argparse.ArgumentParser:
    cmd = commands.add_parser(
        name,
        help=help,
        description=help + ". Comments and untouched text are kept; the report goes to stderr.",
    )
    cmd.add_argument("file", metavar="FILE", help="a .prototxt, or - for stdin")
    out = cmd.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    out.add_argument("-i", "--in-place", action="store_true", help="rewrite FILE itself")
    out.add_argument("--diff", action="store_true", help="print a unified diff instead")
    cmd.add_argument("--proto", metavar="PATH", help="a fork's caffe.proto instead of the built-in")
    cmd.add_argument(
        "--lenient",
        action="store_true",
        help="tolerate fields the schema lacks (kept verbatim, with a warning)",
    )
    return cmd


def _head_arguments(cmd: argparse.ArgumentParser) -> None:
    what = cmd.add_mutually_exclusive_group()
    what.add_argument("--channel", type=int, metavar="K", help="one channel (default 0)")
    what.add_argument("--class", dest="logit", type=int, metavar="K", help="one class logit")
    what.add_argument("--sumsq", action="store_true", help="the whole blob's squared norm")
    what.add_argument(
        "--unit",
        type=_unit,
        metavar="K[,H,W]",
        help="one unit: channel K at H,W (default the centre), averaged over the batch",
    )
    cmd.add_argument(
        "--reduce",
        choices=["mean", "sum"],
        default="mean",
        help="over the batch and positions (default mean)",
    )
    cmd.add_argument("--weight", type=float, default=1.0, help="loss weight (negative: minimise)")
    cmd.add_argument(
        "--channels",
        type=int,
        metavar="N",
        help="channels of the target when the layers do not tell",
    )
    cmd.add_argument(
        "--after-inplace",
        action="store_true",
        help="the value after the in-place layers that follow the target",
    )


def _head(args: argparse.Namespace) -> Any:
    from protoedit.rewrites import LossHead

    if args.sumsq:
        return LossHead("sumsq", 0, args.reduce, args.weight)
    if args.unit is not None:
        position = tuple(args.unit[1:]) or None
        return LossHead("unit", args.unit[0], args.reduce, args.weight, position)
    if args.logit is not None:
        return LossHead("logit", args.logit, args.reduce, args.weight)
    return LossHead("channel", args.channel or 0, args.reduce, args.weight)


def _int_list(text: str, minimum: int, form: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {form} (integers), got {text!r}") from None
    if any(v < minimum for v in values):
        raise argparse.ArgumentTypeError(f"values must be at least {minimum}, got {text!r}")
    return values


def _dims(text: str) -> list[int]:
    """``N,C,H,W``: positive dimensions."""
    return _int_list(text, 1, "N,C,H,W")


def _unit(text: str) -> list[int]:
    """``K`` or ``K,H,W``: indices."""
    return _int_list(text, 0, "K or K,H,W")


def _add_rewrites(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from protoedit import rewrites

    def run(fn: Any) -> Any:
        def runner(args: argparse.Namespace) -> int:
            from protoedit.commands import rewrite_file

            return rewrite_file(
                args.file,
                lambda doc: fn(doc, args),
                args.output,
                args.in_place,
                args.diff,
                args.proto,
                getattr(args, "validate", False),
                args.lenient,
            )

        return runner

    cmd = _rewrite_command(commands, "upgrade", "upgrade a legacy net file as Caffe does")
    cmd.set_defaults(run=run(lambda doc, args: rewrites.upgrade(doc)))

    cmd = _rewrite_command(commands, "to-deploy", "turn a train/val net into its deploy net")
    cmd.add_argument("--phase", choices=["TEST", "TRAIN"], default="TEST", type=str.upper)
    cmd.add_argument("--shape", type=_dims, metavar="N,C,H,W", help="the Input layer's shape")
    cmd.add_argument("--channels", type=int, metavar="C", help="channels, when not derivable")
    cmd.set_defaults(
        run=run(lambda doc, args: rewrites.to_deploy(doc, args.phase, args.shape, args.channels))
    )

    cmd = _rewrite_command(commands, "force-backward", "set force_backward: true")
    cmd.set_defaults(run=run(lambda doc, args: rewrites.force_backward(doc)))

    cmd = _rewrite_command(commands, "filter", "keep the layers Caffe builds for one state")
    cmd.add_argument("--phase", choices=["TEST", "TRAIN"], default="TEST", type=str.upper)
    cmd.add_argument("--level", type=int, default=0)
    cmd.add_argument("--stage", action="append", default=[], metavar="S")
    cmd.set_defaults(
        run=run(
            lambda doc, args: rewrites.filter_net(doc, args.phase, args.level, tuple(args.stage))
        )
    )

    cmd = _rewrite_command(commands, "truncate", "keep exactly what computes a target")
    cmd.add_argument(
        "--at",
        required=True,
        metavar="TARGET",
        help="a layer or blob name (layer:NAME / blob:NAME when both exist)",
    )
    cmd.add_argument(
        "--after-inplace",
        action="store_true",
        help="keep the in-place layers after the target (post-activation)",
    )
    cmd.set_defaults(run=run(lambda doc, args: rewrites.truncate(doc, args.at, args.after_inplace)))

    cmd = _rewrite_command(commands, "add-loss", "append an activation-loss head")
    cmd.add_argument("--blob", required=True, metavar="TARGET", help="the value to measure")
    _head_arguments(cmd)
    cmd.set_defaults(
        run=run(
            lambda doc, args: rewrites.add_loss(
                doc, args.blob, _head(args), args.after_inplace, args.channels
            )
        )
    )

    cmd = _rewrite_command(commands, "aux", "make the auxiliary net for one unit, in one step")
    cmd.add_argument("--target", required=True, metavar="LAYER")
    _head_arguments(cmd)
    cmd.add_argument(
        "--shape",
        type=_dims,
        metavar="N,C,H,W",
        help="input shape, when a train/val net's data layer does not tell",
    )
    cmd.add_argument(
        "--input-channels",
        type=int,
        metavar="C",
        help="input channels, when a train/val net's data layer does not tell",
    )
    cmd.add_argument(
        "--validate",
        action="store_true",
        help="also run the result through `protoedit validate` (exit code: the validation's)",
    )
    cmd.set_defaults(
        run=run(
            lambda doc, args: rewrites.aux(
                doc,
                args.target,
                _head(args),
                args.after_inplace,
                args.channels,
                args.shape,
                args.input_channels,
            )
        )
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="protoedit", description="Parse, rewrite and validate Caffe .prototxt files."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_format(commands)
    _add_check(commands)
    _add_rewrites(commands)
    _add_validate(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for usage errors, as argparse does)."""
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
