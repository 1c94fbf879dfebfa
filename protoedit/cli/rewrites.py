"""The rewrite commands: ``upgrade``, ``to-deploy``, ``force-backward``, ``filter``,
``truncate``, ``add-loss`` and ``aux``, each a function of the loaded document."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from protoedit.cli.messages import say
from protoedit.cli.options import (
    Commands,
    add_head,
    add_output,
    add_schema,
    add_state,
    add_target,
    add_timeout,
    add_weights,
    dims,
    head,
    head_flags,
    hints,
    parse_size,
    positive,
)
from protoedit.cli.weight_rewrites import add_carrying, add_weight_rewrites, carrying, weights_files
from protoedit.validate import DEFAULT_TIMEOUT, SMALLEST

#: What a rewrite does to a document given the parsed arguments; returns its report.
Rewrite = Callable[[Any, argparse.Namespace], Any]

#: The options of the NetState and the Input shape: library parameter -> option.
_STATE = {"stages": "--stage S", "phase": "--phase P"}
_SHAPE = {"shape": "--shape N,C,H,W", "batch": "--batch N"}
_WEIGHTS = {"weights_out": "--weights-out OUT.caffemodel", "weights": "--weights IN.caffemodel"}


def _command(commands: Commands, name: str, help: str, rewrite: Rewrite) -> argparse.ArgumentParser:
    """A rewrite command: FILE, where the result goes, the schema, ``--draw``."""
    cmd: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help,
        description=help + ". Comments and untouched text are kept; the report goes to stderr.",
    )
    cmd.add_argument("file", metavar="FILE", help="a .prototxt, or - for stdin")
    out = cmd.add_mutually_exclusive_group()
    add_output(out, "OUT", "write here instead of stdout")
    out.add_argument("-i", "--in-place", action="store_true", help="rewrite FILE itself")
    out.add_argument("--diff", action="store_true", help="print a unified diff instead")
    add_schema(cmd, lenient="tolerate fields the schema lacks (kept verbatim, with a warning)")
    cmd.add_argument("--draw", metavar="PICTURE", help="also draw the change (.svg/.png/.pdf)")
    cmd.set_defaults(run=_runner(rewrite))
    return cmd


def _runner(rewrite: Rewrite) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from protoedit.cli.rewrite_file import rewrite_file
        from protoedit.errors import ProtoeditError

        validating = getattr(args, "validate", False)
        if hasattr(args, "random_weights") and not validating:
            given = _validate_options(args)
            if args.weights_out:
                given.pop("weights", None)  # the weights the new ones are taken from
            unused = [_VALIDATE_FLAGS[key] for key in given]
            if unused:
                raise ProtoeditError(f"{', '.join(unused)} only apply with --validate")
        return rewrite_file(
            args.file,
            lambda doc: rewrite(doc, args),
            output=args.output,
            in_place=args.in_place,
            diff=args.diff,
            schema=args.proto,
            lenient=args.lenient,
            # the verdict at batch 1 and the smallest extent, as `protoedit validate` reaches it
            validate_options={**_validate_options(args), "batch": 1, "extent": SMALLEST}
            if validating
            else None,
            draw=args.draw,
            weights=weights_files(args),
        )

    return run


def _rewrites() -> Any:
    """:mod:`protoedit.rewrites`, imported when a rewrite runs, not when the parser is built."""
    from protoedit import rewrites

    return rewrites


def _upgrade(doc: Any, args: argparse.Namespace) -> Any:
    """:func:`protoedit.rewrites.upgrade`, saying so when the file is already current."""
    report = _rewrites().upgrade(doc)
    if not report.lines():
        say("nothing to upgrade")
    return report


def add_rewrites(commands: Commands) -> None:
    """Every rewrite command."""
    _command(commands, "upgrade", "upgrade a legacy net or solver file as Caffe does", _upgrade)

    cmd = _command(
        commands,
        "to-deploy",
        "turn a train/val net into its deploy net",
        carrying(
            lambda doc, args: _rewrites().to_deploy(
                doc,
                args.phase,
                shape=args.shape,
                input_channels=args.channels,
                level=args.level,
                stages=args.stage,
                batch=args.batch,
            )
        ),
    )
    add_carrying(cmd)
    add_state(cmd)
    cmd.add_argument("--shape", type=dims, metavar="N,C,H,W", help="the Input layer's shape")
    cmd.add_argument("--channels", type=positive, metavar="C", help="channels, when not derivable")
    cmd.add_argument(
        "--batch", type=positive, metavar="N", help="batch size (default: the data layer's)"
    )
    hints(cmd, {**_SHAPE, **_STATE, "input_channels": "--channels C", **_WEIGHTS})

    _command(
        commands,
        "force-backward",
        "set force_backward: true",
        lambda doc, args: _rewrites().force_backward(doc),
    )

    cmd = _command(
        commands,
        "filter",
        "keep the layers Caffe builds for one state",
        lambda doc, args: _rewrites().filter_net(doc, args.phase, args.level, tuple(args.stage)),
    )
    add_state(cmd)
    hints(cmd, _STATE)

    cmd = _command(
        commands,
        "truncate",
        "keep exactly what computes a target",
        carrying(
            lambda doc, args: _rewrites().truncate(
                doc, args.target, after_inplace=args.after_inplace
            )
        ),
    )
    add_carrying(cmd)
    add_target(cmd, True, "a layer or blob name (layer:NAME / blob:NAME when both exist)")
    cmd.add_argument(
        "--after-inplace",
        action="store_true",
        help="keep the in-place layers after the target (post-activation)",
    )

    cmd = _command(
        commands,
        "add-loss",
        "append an activation-loss head",
        lambda doc, args: _rewrites().add_loss(
            doc,
            args.target,
            head(args),
            after_inplace=args.after_inplace,
            target_channels=args.channels,
        ),
    )
    add_target(cmd, True, "the value to measure: a layer or blob name")
    add_head(cmd)
    hints(cmd, head_flags)
    _add_aux(commands)
    add_weight_rewrites(commands, _command)


def _aux(doc: Any, args: argparse.Namespace) -> Any:
    return _rewrites().aux(
        doc,
        args.target,
        head(args),
        after_inplace=args.after_inplace,
        target_channels=args.channels,
        shape=args.shape,
        input_channels=args.input_channels,
        phase=args.phase,
        level=args.level,
        stages=args.stage,
        batch=args.batch,
    )


def _add_aux(commands: Commands) -> None:
    cmd = _command(
        commands, "aux", "make the auxiliary net for one unit, in one step", carrying(_aux)
    )
    add_target(cmd, True, "the layer (or blob) whose unit the loss head measures")
    add_head(cmd)
    cmd.add_argument(
        "--shape",
        type=dims,
        metavar="N,C,H,W",
        help="input shape, when a train/val net's data layer does not tell",
    )
    cmd.add_argument(
        "--input-channels",
        type=positive,
        metavar="C",
        help="input channels, when a train/val net's data layer does not tell",
    )
    cmd.add_argument(
        "--batch", type=positive, metavar="N", help="batch size (default: the data layer's)"
    )
    add_state(cmd)
    check = cmd.add_argument_group("validation (with --validate)")
    check.add_argument(
        "--validate",
        action="store_true",
        help="also run the result through `protoedit validate` (exit code: the validation's; "
        "-i keeps the original when it fails)",
    )
    add_weights(check, required=False)
    add_carrying(cmd, with_input=False)
    check.add_argument(
        "--random-weights", action="store_true", help="seeded random values for every parameter"
    )
    check.add_argument(
        "--memory-limit",
        type=parse_size,
        metavar="SIZE",
        help="address-space limit of the Caffe process, e.g. 8G; 0 for none (default 4G)",
    )
    add_timeout(check, None, f"kill Caffe after this long (default {DEFAULT_TIMEOUT:g})")
    hints(
        cmd,
        lambda args: {
            **head_flags(args),
            **_SHAPE,
            **_STATE,
            "input_channels": "--input-channels C",
            **_WEIGHTS,
        },
    )


def _validate_options(args: argparse.Namespace) -> dict[str, Any]:
    """What ``aux --validate`` passes on to :func:`protoedit.validate` (the options given)."""
    given = {
        "weights": args.weights,
        "random_weights": args.random_weights or None,
        "memory_limit": args.memory_limit,
        "timeout": args.timeout,
        "strict_weights": args.strict_weights or None,
    }
    return {key: value for key, value in given.items() if value is not None}


#: aux's validation options, by the name :func:`_validate_options` gives them.
_VALIDATE_FLAGS = {
    "weights": "--weights",
    "random_weights": "--random-weights",
    "memory_limit": "--memory-limit",
    "timeout": "--timeout",
    "strict_weights": "--strict-weights",
}
