"""The ``protoedit`` command line: thin front ends over the library."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from protoedit.errors import ProtoeditError
from protoedit.files import STDIN
from protoedit.validate import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT, EXTENTS, SMALLEST

if TYPE_CHECKING:
    from protoedit.rewrites import LossHead

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
        help="load nets in Caffe, run forward and backward, check the input gradient",
        description="Instantiate each NET in Caffe in warm worker processes, fill its inputs "
        "(at batch 1 unless --batch says otherwise), run forward and backward, and report blob "
        "shapes, losses and input gradients, one report per file in the order given. Exit 0 "
        "valid, 1 validation failed, 2 could not run (the worst over the files).",
    )
    cmd.add_argument("nets", nargs="+", metavar="NET.prototxt", help="the nets, or - for stdin")
    cmd.add_argument(
        "--jobs", "-j", type=_positive, metavar="N", help="Caffe workers (default: the cores)"
    )
    cmd.add_argument(
        "--batch",
        type=_batch,
        default=1,
        metavar="N|declared",
        help="batch of the generated inputs (default 1; 'declared': the net's own); kept as "
        "declared where a layer makes the batch matter",
    )
    cmd.add_argument(
        "--extent",
        choices=EXTENTS,
        default=SMALLEST,
        help="height and width of the generated inputs: the smallest that every layer "
        "provably handles as it does the declared ones (default), or the net's own",
    )
    cmd.add_argument(
        "--param-gradients",
        action="store_true",
        help="compute parameter gradients under force_backward too (skipped by default where "
        "Caffe allows it: the verdict does not need them)",
    )
    cmd.add_argument("--junit-xml", metavar="FILE", help="also write a JUnit XML report to FILE")
    cmd.add_argument(
        "--hook",
        action="store_true",
        help="what the pre-commit hook checks: a solver file is skipped, a train/val net is "
        "validated as its deploy net (to-deploy in memory), weights are random unless given, "
        "and a net that runs without a loss or force_backward passes",
    )
    cmd.add_argument("--weights", metavar="MODEL.caffemodel")
    cmd.add_argument("--phase", choices=["TEST", "TRAIN"], default="TEST", type=str.upper)
    cmd.add_argument(
        "--json", action="store_true", help="print one JSON object a file (JSON lines)"
    )
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


def _batch(text: str) -> int | str:
    """``--batch``: a positive number or ``declared``."""
    if text.strip().lower() == "declared":
        return "declared"
    return _positive(text)


def _run_validate(args: argparse.Namespace) -> int:
    from protoedit.validate import iter_validate
    from protoedit.validate.hook import hook_nets
    from protoedit.validate.report import ValidationReport

    if "-" in args.nets and len(args.nets) > 1:
        print("protoedit: error: - (stdin) must be the only NET", file=sys.stderr)
        return 2
    options = dict(
        weights=args.weights,
        phase=args.phase,
        inputs=dict(args.input),
        seed=args.seed,
        timeout=args.timeout,
        memory_limit=args.memory_limit,
        allow_python_layers=args.allow_python_layers,
        random_weights=args.random_weights,
        save_gradients=args.save_gradients,
        batch=args.batch,
        extent=args.extent,
        skip_param_gradients=not args.param_gradients,
    )
    progress = _Progress(len(args.nets)) if sys.stderr.isatty() else None
    reports: list[ValidationReport | None] = [None] * len(args.nets)
    try:
        if args.nets == ["-"]:
            from protoedit.document import loads

            nets: list[Any] = [loads(sys.stdin.read(), path="-", lenient=True)]
        else:
            nets = list(args.nets)
        if args.hook:
            nets, skipped = hook_nets(nets, args.phase)
            options["random_weights"] = options["random_weights"] or args.weights is None
            for index, report in skipped.items():
                reports[index] = report
        runnable = [i for i in range(len(nets)) if reports[i] is None]
        shown = 0
        for position, report in iter_validate(
            [nets[i] for i in runnable], jobs=args.jobs, **options
        ):
            if args.hook:
                _hook_verdict(report)
            reports[runnable[position]] = report
            if progress is not None:
                progress.step(report.net, sum(r is not None for r in reports))
            while shown < len(reports) and reports[shown] is not None:
                _print_report(reports[shown], args, progress, len(reports) > 1)
                shown += 1
        for left in reports[shown:]:
            _print_report(left, args, progress, len(reports) > 1)
    except ProtoeditError as exc:
        if progress is not None:
            progress.clear()
        print(f"protoedit: error: {exc}", file=sys.stderr)
        return 2
    if progress is not None:
        progress.clear()
    done = [report for report in reports if report is not None]
    if args.junit_xml:
        from protoedit.validate.report import write_junit

        write_junit(done, args.junit_xml)
    if len(done) > 1 and not args.json:
        counts = {
            s: sum(r.status == s for r in done) for s in ("valid", "failed", "error", "skipped")
        }
        print(f"{len(done)} files: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return max(report.exit_code for report in done)


def _hook_verdict(report: Any) -> None:
    """In hook mode a net that runs without a loss or force_backward passes: Caffe built it and
    ran forward and backward, and no input gradient is to be expected."""
    if report.status == "failed" and report.cause in ("no_loss", "no_force_backward"):
        report.status = "valid"
        report.reason = f"forward and backward ran; no input gradient expected ({report.reason})"
        report.cause = report.hint = ""
    elif report.cause == "python_layers":  # user code (often a data reader): only when asked
        report.status = "skipped"
        report.reason += " (add --allow-python-layers to the hook's args to run them)"
        report.cause = report.hint = ""


class _Progress:
    """A one-line ``[done/total] file`` progress display on a terminal's stderr."""

    def __init__(self, total: int) -> None:
        self.total = total

    def step(self, name: str, done: int) -> None:
        self.clear()
        print(f"[{done}/{self.total}] validated {name}", end="", file=sys.stderr, flush=True)

    def clear(self) -> None:
        print("\r\x1b[K", end="", file=sys.stderr, flush=True)


def _print_report(
    report: Any, args: argparse.Namespace, progress: _Progress | None, many: bool
) -> None:
    """One file's report: a JSON line, or the text report with its hint."""
    import json

    if progress is not None:
        progress.clear()
    if args.json:
        print(json.dumps(report.to_dict(), allow_nan=True), flush=True)
        return
    error = report.status == "error"
    print(report.format_text(verdict=many or not error))
    if error and not many:
        print(f"protoedit: error: {report.reason}", file=sys.stderr)
    hint = _VALIDATE_HINTS.get(report.cause, report.hint)
    if hint:
        print(f"hint: {hint}", file=sys.stderr if error and not many else sys.stdout)
    if many:
        print(flush=True)


def _add_exclude(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="skip matching files and folders (gitignore syntax, relative to the current "
        "folder; also for files named one by one); repeatable",
    )


def _add_format(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    _add_exclude(cmd)
    cmd.set_defaults(run=_run_format, usage_error=cmd.error)


def _run_format(args: argparse.Namespace) -> int:
    from protoedit.commands import format_files
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


def _add_check(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    _add_exclude(cmd)
    cmd.set_defaults(run=_run_check)


def _run_check(args: argparse.Namespace) -> int:
    from protoedit.commands import check_files
    from protoedit.discover import net_files

    return check_files(
        net_files(args.files, args.exclude),
        strict=args.strict,
        schema=args.proto,
        message_type=args.message_type,
        stdin_name=args.stdin_filename,
    )


def _rewrite_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help: str
) -> argparse.ArgumentParser:
    cmd = commands.add_parser(
        name,
        help=help,
        description=help + ". Comments and untouched text are kept; the report goes to stderr.",
    )
    cmd.set_defaults(rewrite_name=name)
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
    cmd.add_argument("--draw", metavar="PICTURE", help="also draw the change (.svg/.png/.pdf)")
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
        help="over the batch and positions (default mean; sum for --sumsq, where mean "
        "averages the squares)",
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


def _head(args: argparse.Namespace) -> LossHead:
    from protoedit.rewrites import LossHead

    if args.sumsq:
        return LossHead("sumsq", 0, args.reduce, args.weight)
    if args.unit is not None:
        position = tuple(args.unit[1:]) or None
        return LossHead("unit", args.unit[0], args.reduce, args.weight, position)
    if args.logit is not None:
        return LossHead("logit", args.logit, args.reduce, args.weight)
    return LossHead("channel", args.channel or 0, args.reduce, args.weight)


def _state_arguments(cmd: argparse.ArgumentParser) -> None:
    """``--phase``, ``--level`` and ``--stage``: the NetState to build the net for."""
    cmd.add_argument(
        "--phase",
        choices=["TEST", "TRAIN"],
        default="TEST",
        type=str.upper,
        help="the net state's phase (default TEST)",
    )
    cmd.add_argument("--level", type=int, default=0, help="the net state's level (default 0)")
    cmd.add_argument(
        "--stage",
        action="append",
        default=[],
        metavar="S",
        help="a stage of the net state (repeatable); one that some include/exclude rule names",
    )


#: Library parameter -> the option that supplies it, per rewrite command (for hints).
_FLAGS: dict[str, dict[str, str]] = {
    "to-deploy": {
        "shape": "--shape N,C,H,W",
        "input_channels": "--channels C",
        "batch": "--batch N",
        "stages": "--stage S",
        "phase": "--phase P",
    },
    "aux": {
        "shape": "--shape N,C,H,W",
        "input_channels": "--input-channels C",
        "target_channels": "--channels N",
        "batch": "--batch N",
        "stages": "--stage S",
        "phase": "--phase P",
        "reduce": "--reduce mean|sum",
    },
    "add-loss": {"target_channels": "--channels N", "reduce": "--reduce mean|sum"},
    "filter": {"stages": "--stage S"},
}


def _positive(text: str) -> int:
    """One integer of at least 1."""
    values = _int_list(text, 1, "N")
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"expected one integer, got {text!r}")
    return values[0]


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


def _upgrade(doc: Any) -> Any:
    """:func:`protoedit.rewrites.upgrade`, saying so when the file is already current."""
    from protoedit import rewrites

    report = rewrites.upgrade(doc)
    if not report.lines():
        print("nothing to upgrade", file=sys.stderr)
    return report


def _rewrites() -> ModuleType:
    """:mod:`protoedit.rewrites`, imported when a rewrite runs, not when the parser is built."""
    from protoedit import rewrites

    return rewrites


def _add_rewrites(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def run(fn: Any) -> Any:
        def runner(args: argparse.Namespace) -> int:
            from protoedit.commands import rewrite_file

            if hasattr(args, "random_weights") and not args.validate:
                unused = [_VALIDATE_FLAGS[key] for key in _validate_options(args)]
                if unused:
                    print(
                        f"protoedit: error: {', '.join(unused)} only apply with --validate",
                        file=sys.stderr,
                    )
                    return 2
            return rewrite_file(
                args.file,
                lambda doc: fn(doc, args),
                args.output,
                args.in_place,
                args.diff,
                args.proto,
                getattr(args, "validate", False),
                args.lenient,
                _FLAGS.get(args.rewrite_name, {}),
                # the verdict at batch 1 and the smallest extent, as `protoedit validate`
                # reaches it
                {**_validate_options(args), "batch": 1, "extent": SMALLEST}
                if getattr(args, "validate", False)
                else None,
                args.draw,
            )

        return runner

    cmd = _rewrite_command(commands, "upgrade", "upgrade a legacy net or solver file as Caffe does")
    cmd.set_defaults(run=run(lambda doc, args: _upgrade(doc)))

    cmd = _rewrite_command(commands, "to-deploy", "turn a train/val net into its deploy net")
    _state_arguments(cmd)
    cmd.add_argument("--shape", type=_dims, metavar="N,C,H,W", help="the Input layer's shape")
    cmd.add_argument("--channels", type=int, metavar="C", help="channels, when not derivable")
    cmd.add_argument(
        "--batch", type=_positive, metavar="N", help="batch size (default: the data layer's)"
    )
    cmd.set_defaults(
        run=run(
            lambda doc, args: _rewrites().to_deploy(
                doc,
                args.phase,
                shape=args.shape,
                input_channels=args.channels,
                level=args.level,
                stages=args.stage,
                batch=args.batch,
            )
        )
    )

    cmd = _rewrite_command(commands, "force-backward", "set force_backward: true")
    cmd.set_defaults(run=run(lambda doc, args: _rewrites().force_backward(doc)))

    cmd = _rewrite_command(commands, "filter", "keep the layers Caffe builds for one state")
    _state_arguments(cmd)
    cmd.set_defaults(
        run=run(
            lambda doc, args: _rewrites().filter_net(doc, args.phase, args.level, tuple(args.stage))
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
    cmd.set_defaults(
        run=run(
            lambda doc, args: _rewrites().truncate(doc, args.at, after_inplace=args.after_inplace)
        )
    )

    cmd = _rewrite_command(commands, "add-loss", "append an activation-loss head")
    cmd.add_argument("--blob", required=True, metavar="TARGET", help="the value to measure")
    _head_arguments(cmd)
    cmd.set_defaults(
        run=run(
            lambda doc, args: _rewrites().add_loss(
                doc,
                args.blob,
                _head(args),
                after_inplace=args.after_inplace,
                target_channels=args.channels,
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
        "--batch", type=_positive, metavar="N", help="batch size (default: the data layer's)"
    )
    _state_arguments(cmd)
    check = cmd.add_argument_group("validation (with --validate)")
    check.add_argument(
        "--validate",
        action="store_true",
        help="also run the result through `protoedit validate` (exit code: the validation's; "
        "-i keeps the original when it fails)",
    )
    check.add_argument("--weights", metavar="MODEL.caffemodel")
    check.add_argument(
        "--random-weights", action="store_true", help="seeded random values for every parameter"
    )
    check.add_argument(
        "--memory-limit",
        type=parse_size,
        metavar="SIZE",
        help="address-space limit of the Caffe process, e.g. 8G; 0 for none (default 4G)",
    )
    check.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help=f"kill Caffe after this long (default {DEFAULT_TIMEOUT:g})",
    )
    cmd.set_defaults(
        run=run(
            lambda doc, args: _rewrites().aux(
                doc,
                args.target,
                _head(args),
                after_inplace=args.after_inplace,
                target_channels=args.channels,
                shape=args.shape,
                input_channels=args.input_channels,
                phase=args.phase,
                level=args.level,
                stages=args.stage,
                batch=args.batch,
            )
        )
    )


def _validate_options(args: argparse.Namespace) -> dict[str, Any]:
    """What ``aux --validate`` passes on to :func:`protoedit.validate` (the options given)."""
    given = {
        "weights": args.weights,
        "random_weights": args.random_weights or None,
        "memory_limit": args.memory_limit,
        "timeout": args.timeout,
    }
    return {key: value for key, value in given.items() if value is not None}


#: aux's validation options, by the name :func:`_validate_options` gives them.
_VALIDATE_FLAGS = {
    "weights": "--weights",
    "random_weights": "--random-weights",
    "memory_limit": "--memory-limit",
    "timeout": "--timeout",
}


def _add_setup_caffe(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "setup-caffe",
        help="build pycaffe (or reuse the cached build) and install it into this Python",
        description="Build pycaffe from Caffe's source package, CPU only, into the cache "
        "(~/.cache/protoedit, or $PROTOEDIT_CACHE), or reuse the build found there, and link it "
        "into the environment running protoedit. Needs protoedit's `caffe` extra; as root it "
        "installs the Debian packages the build needs. Exit 0 ready, 2 error.",
    )

    def run(args: argparse.Namespace) -> int:
        from protoedit import caffe_build

        caffe_build.setup()  # a CaffeBuildError is a ProtoeditError: main() reports it
        return 0

    cmd.set_defaults(run=run)


def _version() -> str:
    """protoedit's version from the installed package's metadata (no heavy imports)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("protoedit")
    except PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
        return "unknown (not installed)"


class _VersionAction(argparse.Action):
    """``--version``: print and exit; the metadata is read only when asked for."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(f"protoedit {_version()}")
        parser.exit()


def _floats(text: str) -> tuple[float, ...]:
    """``B,G,R`` (or one value): numbers."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 104,117,123: {text!r}") from None


def _preprocess_arguments(cmd: argparse.ArgumentParser, crop: bool = True) -> None:
    """The Caffe-way image preprocessing options of grad, saliency and visualize."""
    cmd.add_argument("--rgb", action="store_true", help="keep RGB (default: BGR, as Caffe)")
    mean = cmd.add_mutually_exclusive_group()
    mean.add_argument("--mean", type=_floats, metavar="B,G,R", help="mean per channel")
    mean.add_argument("--mean-file", metavar="MEAN.binaryproto", help="a mean image")
    cmd.add_argument(
        "--scale", type=float, default=1.0, help="multiplier after the mean (default 1: 0-255)"
    )
    if crop:
        cmd.add_argument(
            "--crop",
            action="store_true",
            help="scale the shorter side and centre-crop (default: resize to the input size)",
        )


def _preprocess(args: argparse.Namespace) -> Any:
    """The ``Preprocess`` the options of :func:`_preprocess_arguments` describe."""
    from protoedit.explain import Preprocess

    fit: Literal["resize", "crop"] = "crop" if getattr(args, "crop", False) else "resize"
    return Preprocess(
        rgb=args.rgb, mean=args.mean, mean_file=args.mean_file, scale=args.scale, fit=fit
    )


def _add_grad(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "grad",
        help="gradients of a loss by layer name: every parameter and every input",
        description="Rewrite NET in memory for a loss (an activation head on --target, or the "
        "net's own --loss blob), run one forward and backward in Caffe in a child process, and "
        "print layer, role, shape, |grad| and |grad|/|param| for every learnable blob and "
        "input. -o writes them as .npz (keys LAYER/ROLE and input/BLOB). Exit 0, 2 on error.",
    )
    cmd.add_argument("net", metavar="NET.prototxt")
    cmd.add_argument("--weights", required=True, metavar="MODEL.caffemodel")
    cmd.add_argument(
        "--input",
        action="append",
        required=True,
        metavar="[BLOB=]FILE",
        help="an image (PNG/JPEG) or .npy for the input blob; BLOB=FILE when there are several",
    )
    what = cmd.add_mutually_exclusive_group(required=True)
    what.add_argument("--target", metavar="LAYER", help="the layer the loss head measures")
    what.add_argument("--loss", metavar="BLOB", help="the net's own loss blob instead")
    _head_arguments(cmd)
    _preprocess_arguments(cmd)
    cmd.add_argument("-o", "--output", metavar="GRADS.npz", help="write every gradient here")
    cmd.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS", help="Caffe's limit"
    )
    cmd.set_defaults(run=_run_grad)


def _grad_inputs(given: list[str]) -> Any:
    """``FILE`` alone for the only input blob, else ``BLOB=FILE`` pairs."""
    import os

    from protoedit.errors import ProtoeditError

    pairs = {}
    for text in given:
        name, sep, path = text.partition("=")
        if not sep or os.path.exists(text):
            if len(given) == 1:
                return text
            raise ProtoeditError(f"name the blob of each input: BLOB=FILE, not {text!r}")
        pairs[name] = path
    return pairs


def _run_grad(args: argparse.Namespace) -> int:
    from protoedit.errors import ProtoeditError
    from protoedit.explain import gradients

    pre = _preprocess(args)
    try:
        result = gradients(
            args.net,
            weights=args.weights,
            inputs=_grad_inputs(args.input),
            target=args.target,
            head=_head(args) if args.target else None,
            loss=args.loss,
            preprocess=pre,
            after_inplace=args.after_inplace,
            target_channels=args.channels,
            timeout=args.timeout,
        )
        if args.output:
            result.save(args.output)
    except ProtoeditError as exc:
        line = str(exc).splitlines()[0]
        if "name each one" in line:
            line += " with --input BLOB=FILE"
        print(f"protoedit: error: {line}", file=sys.stderr)
        return 2
    for line in result.report.lines():
        print(line, file=sys.stderr)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    rows = [("layer", "role", "shape", "|grad|", "|grad|/|param|")]
    for layer, role, shape, norm, ratio in result.rows():
        dims = "x".join(map(str, shape))
        rows.append((layer, role, dims, f"{norm:.6g}", "-" if ratio is None else f"{ratio:.6g}"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"loss: {result.loss:.9g}")
    if args.output:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _add_saliency(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # Defaults live in protoedit.explain.saliency_maps (not imported here: numpy and the rewrites
    # would load for every command); a test checks that this help states them.
    def count(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
        return value

    def fraction(text: str) -> float:
        value = _floats(text)
        if len(value) != 1 or not value[0] >= 0:
            raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
        return value[0]

    cmd = commands.add_parser(
        "saliency",
        help="a saliency map of one image: gradient, SmoothGrad or integrated gradients",
        description="Rewrite NET in memory for a head (--class K on the net's class scores, or "
        "a head on --target), run it in Caffe in a child process, and write a picture "
        "(-o MAP.png: the input, the map, the map over the input) with the raw H x W map "
        "beside it (MAP.npy; integrated also writes the per-channel attributions, "
        "MAP-attributions.npy). The noisy copies and "
        "the integration steps run as batches of --chunk items. Exit 0, 2 on error.",
    )
    cmd.add_argument("net", metavar="NET.prototxt")
    cmd.add_argument("--weights", required=True, metavar="MODEL.caffemodel")
    cmd.add_argument("--image", required=True, metavar="FILE", help="an image or a .npy")
    cmd.add_argument(
        "--target",
        metavar="LAYER",
        help="the layer the head measures (default with --class: "
        "the net's class scores, the input of a final Softmax)",
    )
    _head_arguments(cmd)
    cmd.add_argument(
        "--method",
        choices=["gradient", "smoothgrad", "integrated"],
        default="gradient",
        help="max |gradient| over channels (the default), its mean over noisy copies, or "
        "integrated gradients from a baseline",
    )
    cmd.add_argument(
        "--samples", type=count, metavar="N", help="smoothgrad: noisy copies (default 50)"
    )
    cmd.add_argument(
        "--noise",
        type=fraction,
        metavar="F",
        help="smoothgrad: noise std as a fraction of the input's range (default 0.15)",
    )
    cmd.add_argument("--seed", type=int, help="smoothgrad: noise seed (default 0)")
    cmd.add_argument(
        "--steps", type=count, metavar="N", help="integrated: midpoint-rule steps (default 64)"
    )
    cmd.add_argument(
        "--baseline", metavar="FILE", help="integrated: an image or .npy (default black)"
    )
    cmd.add_argument(
        "--chunk", type=count, metavar="N", help="batch items per forward/backward (default 32)"
    )
    _preprocess_arguments(cmd)
    cmd.add_argument("-o", "--output", required=True, metavar="MAP.png", help="the heat map")
    cmd.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS", help="Caffe's limit"
    )

    def run(args: argparse.Namespace) -> int:
        from protoedit.explain.attribution import saliency

        flag = next(
            (
                f
                for f, v in (
                    ("--class", args.logit),
                    ("--channel", args.channel),
                    ("--unit", args.unit),
                )
                if v is not None
            ),
            "--channel",
        )
        if args.target is None and args.logit is None:
            raise ProtoeditError("give --class K, or --target LAYER with a head")
        if not args.output.lower().endswith(".png"):
            raise ProtoeditError(f"-o names the heat map, a .png file, not {args.output!r}")
        pre = _preprocess(args)
        try:
            result = saliency(
                args.net,
                weights=args.weights,
                image=args.image,
                target=args.target,
                head=_head(args),
                method=args.method,
                baseline=args.baseline,
                preprocess=pre,
                after_inplace=args.after_inplace,
                target_channels=args.channels,
                timeout=args.timeout,
                **{
                    name: getattr(args, name)
                    for name in ("samples", "noise", "seed", "steps", "chunk")
                    if getattr(args, name) is not None
                },
            )
            written = result.save(args.output)
        except ProtoeditError as exc:
            line = str(exc).splitlines()[0]
            if "is out of range" in line:
                line += f" ({flag})"
            elif "class scores" in line:
                line += ": name the layer with --target LAYER"
            print(f"protoedit: error: {line}", file=sys.stderr)
            return 2
        for line in result.report.lines():
            print(line, file=sys.stderr)
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"{result.method} saliency of '{result.target}': f(image) = {result.value:.6g}")
        gap = result.completeness_gap
        if gap is not None and result.baseline_value is not None:
            delta = result.value - result.baseline_value
            share = f" ({abs(gap) / abs(delta):.2%})" if delta else ""
            print(
                f"f(baseline) = {result.baseline_value:.6g}; attributions sum to "
                f"{delta + gap:.6g}, f(image) - f(baseline) = {delta:.6g}, gap {gap:.3g}{share}"
            )
        print(f"{result.requests} forward/backward requests")
        what = ["input, map, map over the input", "map, H x W", "attributions, C x H x W"]
        for path, description in zip(written, what, strict=False):
            print(f"wrote {path} ({description})")
        return 0

    cmd.set_defaults(run=run)


def _add_draw(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    cmd.add_argument(
        "-o",
        "--output",
        metavar="PICTURE",
        help="write here; the format by extension: .svg, .png, .pdf, .dot (default: SVG on stdout)",
    )
    cmd.add_argument(
        "--rankdir",
        choices=["TB", "LR"],
        default="TB",
        type=str.upper,
        help="top to bottom (default) or left to right",
    )
    cmd.add_argument(
        "--phase",
        choices=["TEST", "TRAIN"],
        type=str.upper,
        help="draw only the layers Caffe builds in this phase (default: every layer)",
    )
    cmd.add_argument("--proto", metavar="PATH", help="a fork's caffe.proto instead of the built-in")
    cmd.add_argument(
        "--lenient", action="store_true", help="tolerate fields the schema lacks (not drawn)"
    )
    cmd.set_defaults(run=_run_draw, usage_error=cmd.error)


def _run_draw(args: argparse.Namespace) -> int:
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

    if change:
        graph = change_graph(load(args.before), load(args.after), args.phase)
    else:
        graph = net_graph(load(args.net), args.phase)
    picture = render(graph, fmt, args.rankdir)
    if args.output:
        from pathlib import Path

        Path(args.output).write_bytes(picture)
    elif hasattr(sys.stdout, "buffer"):
        sys.stdout.buffer.write(picture)
    else:  # a text stream without bytes underneath (tests, embedding)
        sys.stdout.write(picture.decode("utf-8"))
    return 0


def _add_diff(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    cmd.add_argument(
        "--phase",
        choices=["TEST", "TRAIN"],
        type=str.upper,
        help="compare only the layers Caffe builds in this phase",
    )
    cmd.add_argument("--proto", metavar="PATH", help="a fork's caffe.proto instead of the built-in")
    cmd.add_argument(
        "--lenient", action="store_true", help="tolerate fields the schema lacks (not compared)"
    )
    cmd.add_argument(
        "--git",
        action="store_true",
        help="take git's external-diff arguments (PATH OLD HEX MODE NEW HEX MODE); exit 0",
    )
    cmd.set_defaults(run=_run_diff, usage_error=cmd.error)


def _run_diff(args: argparse.Namespace) -> int:
    """Two files, or git's external-diff arguments with ``--git``; exit as ``diff`` does."""
    from protoedit.diff import diff_docs, format_text, to_json
    from protoedit.document import loads
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
        result = diff_docs(old, new, text=args.text, phase=args.phase)
    except ProtoeditError as exc:
        if not args.git:
            raise
        return _git_line_diff(texts, [shown for _, shown in sources], exc)
    print(to_json(result) if args.json else format_text(result), end="" if not args.json else "\n")
    if args.git:
        return 0
    return 0 if result.same else 1


def _git_line_diff(texts: list[str], names: list[str], exc: ProtoeditError) -> int:
    """The git driver's fallback for a file that does not load: say why, show a line diff."""
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


def _add_visualize(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "visualize",
        help="activation maximisation: the image that most excites each unit of a layer",
        description="Rewrite NET in memory (truncate at --target, a per-unit mask head), then "
        "run gradient ascent on the input in Caffe, several units per batch, with the "
        "regularisers of Yosinski et al. 2015 (decay, blur, small-norm and small-contribution "
        "clipping), jitter and octaves. Writes the labelled grid -o GRID.png and, next to it, "
        "each unit's PNG and .npy (as fed to the input blob) and GRID.json. Exit 0, 2 on error.",
    )
    cmd.add_argument("net", metavar="NET.prototxt")
    cmd.add_argument("--weights", required=True, metavar="MODEL.caffemodel")
    cmd.add_argument("--target", metavar="LAYER", help="the layer (or blob) whose units to show")
    what = cmd.add_mutually_exclusive_group()
    what.add_argument("--channels", metavar="0-15", help="channels, e.g. 0-15 or 1,4,9")
    what.add_argument(
        "--units", type=_unit, nargs="+", metavar="K[,H,W]", help="units: channel K at H,W"
    )
    what.add_argument(
        "--class",
        dest="logit",
        type=int,
        metavar="K",
        help="one class of a classifier (the target defaults to the last Softmax's input)",
    )
    cmd.add_argument(
        "--preset",
        default="default",
        metavar="NAME",
        help="default, or yosinski1..yosinski4 (the four sets of Yosinski et al. 2015)",
    )
    cmd.add_argument("--steps", type=int, metavar="N", help="iterations (default: the preset's)")
    cmd.add_argument("--seed", type=int, default=0, help="the noise and jitter seed")
    cmd.add_argument("--octaves", type=int, metavar="N", help="image scales, coarse to fine")
    cmd.add_argument("--batch", type=int, default=16, help="units optimised together")
    cmd.add_argument("--start", metavar="FILE", help="begin from this image or .npy, not noise")
    _preprocess_arguments(cmd, crop=False)
    cmd.add_argument(
        "--before-inplace",
        action="store_true",
        help="measure the target before the in-place layers that follow it (default after)",
    )
    cmd.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    cmd.add_argument("-o", "--output", required=True, metavar="GRID.png")
    cmd.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS", help="Caffe's limit"
    )
    cmd.set_defaults(run=_run_visualize)


def _run_visualize(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from protoedit.errors import ProtoeditError
    from protoedit.explain.maximisation import visualize
    from protoedit.explain.objectives import Unit, parse_channels
    from protoedit.explain.settings import PRESETS
    from protoedit.explain.vis_net import classifier_target

    pre = _preprocess(args)
    if args.preset not in PRESETS:
        _error(f"no preset {args.preset!r}; the presets: {', '.join(PRESETS)} (--preset)")
        return 2
    settings = replace(PRESETS[args.preset], seed=args.seed)
    if args.steps is not None:
        settings = replace(settings, steps=args.steps)
    if args.octaves is not None:
        settings = replace(settings, octaves=args.octaves)
    try:
        if args.steps is not None and args.steps < 1:
            raise ProtoeditError("the number of steps must be at least 1")
        target = args.target
        if target is None:
            if args.logit is None:
                raise ProtoeditError("name the layer to visualise with --target LAYER")
            target = classifier_target(args.net)
        if args.logit is not None:
            units = [Unit(args.logit)]
        elif args.units:
            units = [Unit(u[0], tuple(u[1:]) or None) for u in args.units]
        else:
            units = [Unit(c) for c in parse_channels(args.channels or "0")]
        result = visualize(
            args.net,
            weights=args.weights,
            target=target,
            objectives=units,
            settings=settings,
            preprocess=pre,
            start=args.start,
            batch=args.batch,
            after_inplace=not args.before_inplace,
            progress=False if args.quiet else None,
            timeout=args.timeout,
        )
        written = result.save(args.output)
    except ProtoeditError as exc:
        line = str(exc).splitlines()[0]
        if "out of range" in line and "channel" in line:
            line += " (--channels)"
        print(f"protoedit: error: {line}", file=sys.stderr)
        return 2
    for unit in result.results:
        dead = " (dead at the start)" if unit.dead_at_start else ""
        print(f"{unit.label}: {unit.start:.6g} -> {unit.end:.6g} in {unit.steps} steps{dead}")
    print(f"wrote {written[0]} and {len(written) - 1} files next to it", file=sys.stderr)
    return 0


def _add_sweep(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "sweep",
        help="visualise every unit of a model's layers, resumable, on all cores or a Ray cluster",
        usage="protoedit sweep [PLAN.toml] [--net NET --weights W --layers A,B] [--channels "
        "all|0-63] --store DIR [--engine local|ray] [--address ADDR] [--workers N]\n"
        "       protoedit sweep report STORE -o ATLAS_DIR",
        description="Expand a plan (a TOML file, or --net/--weights/--layers/--channels) into "
        "batches of units, run activation maximisation on them in parallel (--engine local: "
        "one worker per core; --engine ray: Ray actors, --address for a cluster), and store "
        "each batch as it is done in --store (SQLite plus images). Run it again to finish "
        "a killed or interrupted sweep: only what is missing is computed; changed settings "
        "make new results. `sweep report STORE -o DIR` writes an HTML contact sheet. Exit 0, "
        "1 when units failed (after one retry), 2 on error, 130 on Ctrl-C.",
    )
    cmd.add_argument("words", nargs="*", metavar="PLAN | report STORE", help=argparse.SUPPRESS)
    cmd.add_argument("--net", metavar="NET.prototxt")
    cmd.add_argument("--weights", metavar="MODEL.caffemodel")
    cmd.add_argument("--layers", metavar="A,B", help="the layers (or blobs) to sweep")
    cmd.add_argument("--channels", metavar="all|0-63", help="channels of each layer (all)")
    cmd.add_argument("--store", metavar="DIR", help="the results folder (created if needed)")
    cmd.add_argument("--engine", choices=("local", "ray"), help="where to run (default local)")
    cmd.add_argument("--address", metavar="ADDR", help="a Ray cluster (ray engine; e.g. auto)")
    cmd.add_argument("--workers", type=int, metavar="N", help="workers (default: one per core)")
    cmd.add_argument("--batch", type=int, metavar="N", help="units per work item (default 8)")
    cmd.add_argument("--preset", help="ascent settings preset (default: default)")
    cmd.add_argument("--steps", type=int, metavar="N", help="iterations (default: the preset's)")
    cmd.add_argument("--seed", type=int, help="the noise and jitter seed")
    mean = cmd.add_mutually_exclusive_group()
    mean.add_argument("--mean", type=_floats, metavar="B,G,R", help="mean per channel")
    mean.add_argument("--mean-file", metavar="MEAN.binaryproto", help="a mean image")
    cmd.add_argument(
        "--scale", type=float, default=1.0, help="multiplier after the mean (default 1: 0-255)"
    )
    cmd.add_argument("--rgb", action="store_true", help="keep RGB (default: BGR, as Caffe)")
    cmd.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    cmd.add_argument("-o", "--output", metavar="ATLAS_DIR", help="report: the HTML folder")
    cmd.set_defaults(run=_run_sweep)


#: Library parameter names in sweep messages, and the flag that sets each.
_SWEEP_FLAGS = {
    "channel": "--channels",
    "batch size": "--batch",
    "steps": "--steps",
    "preset": "--preset",
    "address": "--address",
}


def _run_sweep(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from protoedit.errors import ProtoeditError
    from protoedit.explain import Preprocess
    from protoedit.sweep import SweepInterrupted, run_sweep, write_report
    from protoedit.sweep.plan import (
        Plan,
        PlanFile,
        Target,
        channel_list,
        layer_list,
        make_model,
        make_settings,
        read_plan,
    )

    words = list(args.words)
    try:
        if words[:1] == ["report"]:
            if len(words) != 2 or not args.output:
                raise ProtoeditError("usage: protoedit sweep report STORE -o ATLAS_DIR")
            index = write_report(words[1], args.output)
            print(f"wrote {index}", file=sys.stderr)
            return 0
        if len(words) > 1:
            raise ProtoeditError(f"one plan file at most, got {len(words)}: {' '.join(words)}")
        if args.output:
            raise ProtoeditError("-o is for `protoedit sweep report STORE -o DIR`")
        if words:
            if args.net or args.weights or args.layers or args.channels:
                raise ProtoeditError("give a plan file or --net/--weights/--layers, not both")
            given = read_plan(words[0])
        else:
            missing = [
                f
                for f, v in (
                    ("--net", args.net),
                    ("--weights", args.weights),
                    ("--layers", args.layers),
                )
                if not v
            ]
            if missing:
                raise ProtoeditError(f"give a plan file or {', '.join(missing)}")
            pre = Preprocess(
                rgb=args.rgb, mean=args.mean, mean_file=args.mean_file, scale=args.scale
            )
            model = make_model(args.net, args.weights, preprocess=pre)
            target = Target(model, layer_list(args.layers), channel_list(args.channels))
            given = PlanFile(Plan((target,)))
        overrides = {
            k: v
            for k, v in (("preset", args.preset), ("steps", args.steps), ("seed", args.seed))
            if v is not None
        }
        plan = given.plan
        if overrides:
            preset = overrides.pop("preset", None)
            base = make_settings({"preset": preset}) if preset else plan.settings
            plan = replace(plan, settings=make_settings({**_fields(base), **overrides}))
        if args.batch is not None:
            plan = replace(plan, batch=args.batch)
        store = args.store or given.store
        if not store:
            raise ProtoeditError("name the results folder with --store DIR")
        summary = run_sweep(
            plan,
            store,
            engine=args.engine or given.engine or "local",
            workers=args.workers or given.workers,
            address=args.address or given.address,
            progress=False if args.quiet else None,
        )
    except SweepInterrupted as stop:
        for line in stop.summary.lines():
            print(line, file=sys.stderr)
        return EXIT_INTERRUPTED
    except ProtoeditError as exc:
        line = str(exc).splitlines()[0]
        for name, flag in _SWEEP_FLAGS.items():
            if name in line and flag not in line and not words:
                line += f" ({flag})"
                break
        print(f"protoedit: error: {line}", file=sys.stderr)
        return 2
    for line in summary.lines():
        print(line)
    return 1 if summary.failed else 0


def _fields(settings: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(settings)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="protoedit",
        description="Parse, rewrite and validate Caffe .prototxt files.",
        epilog="Exit codes: 0 success, 1 check or validation failed, 2 error (bad input or "
        "arguments), 123 internal error (a bug: please report it).",
    )
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_format(commands)
    _add_check(commands)
    _add_rewrites(commands)
    _add_validate(commands)
    _add_setup_caffe(commands)
    _add_grad(commands)
    _add_saliency(commands)
    _add_visualize(commands)
    _add_draw(commands)
    _add_diff(commands)
    _add_sweep(commands)
    return parser


#: Exit codes of :func:`main` beyond a command's own 0 (success) and 1 (check failed).
EXIT_ERROR = 2
EXIT_INTERNAL = 123  # as Black: a bug in protoedit, never to be read as "check failed"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what `yes | head -1` reports for `yes`


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code.

    The one error boundary: a :class:`ProtoeditError` or an ``OSError`` is one line on
    stderr and exit 2; any other exception is an internal error (a short report, exit 123);
    Ctrl-C exits 130; a reader closing the pipe (``| head``) ends the command quietly (141).
    """
    _text_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    _refuse_in_place_stdin(parser, args)
    try:
        try:
            code = int(args.run(args))
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
            return code
        except ProtoeditError as exc:
            _error(str(exc))
            return EXIT_ERROR
        except BrokenPipeError:
            raise
        except OSError as exc:
            _error(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))
            return EXIT_ERROR
        except Exception as exc:
            _internal_error(args.command, exc)
            return EXIT_INTERNAL
        except KeyboardInterrupt:
            _error("interrupted")
            return EXIT_INTERRUPTED
    except BrokenPipeError:
        return _quiet_after_broken_pipe()


def _error(message: str) -> None:
    print(f"protoedit: error: {message}", file=sys.stderr)


def _internal_error(command: str, exc: Exception) -> None:
    """A short report of a bug: the command, the exception and where it was raised (the
    whole traceback with ``PROTOEDIT_TRACEBACK=1``)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"\n  raised at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}"
    print(
        f"protoedit: internal error in `protoedit {command}`: {type(exc).__name__}: {exc}"
        f"{where if frames else ''}\n"
        f"  protoedit {_version()}, Python {sys.version.split()[0]}; please report this (the "
        "command line and, if you can, the input file; PROTOEDIT_TRACEBACK=1 shows the "
        "traceback)",
        file=sys.stderr,
    )
    if os.environ.get("PROTOEDIT_TRACEBACK"):
        traceback.print_exception(exc, file=sys.stderr)


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


if __name__ == "__main__":
    sys.exit(main())
