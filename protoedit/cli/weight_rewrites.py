"""The rewrite commands that carry weights: ``fold-bn``, ``rename``, ``fully-conv`` and
``input-channels``; and ``--weights``/``--weights-out`` on ``to-deploy``, ``truncate`` and
``aux`` (the new ``.caffemodel`` keeps only the blobs of the layers left)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from protoedit.cli.options import Commands, add_weights, hints

if TYPE_CHECKING:
    from protoedit.cli.rewrite_file import WeightsFiles

Rewrite = Callable[[Any, argparse.Namespace], Any]
Command = Callable[[Commands, str, str, Rewrite], argparse.ArgumentParser]

#: Library parameters -> the options that set them, for the error boundary's hints.
_FLAGS = {"weights_out": "--weights-out OUT.caffemodel", "weights": "--weights IN.caffemodel"}


def add_weights_out(cmd: argparse.ArgumentParser, *, check: bool, required: bool = False) -> None:
    """``--weights-out`` (and ``--check`` for the rewrites Caffe can prove)."""
    cmd.add_argument(
        "--weights-out",
        required=required,
        metavar="OUT.caffemodel",
        help="write the weights of the rewritten net here (not onto --weights unless -i)",
    )
    if check:
        cmd.add_argument(
            "--check",
            action="store_true",
            help="run the original and the result in Caffe on the same seeded inputs and "
            "write nothing unless every surviving blob agrees (exit 1 otherwise)",
        )


def weights_files(args: argparse.Namespace) -> WeightsFiles | None:
    """Where this command reads and writes weights, refusing options that do not combine."""
    from protoedit.cli.rewrite_file import WeightsFiles
    from protoedit.errors import InvalidArgumentError, MissingArgumentError

    out = getattr(args, "weights_out", None)
    source = getattr(args, "weights", None)
    check = bool(getattr(args, "check", False))
    if out is None:
        if source and not getattr(args, "validate", False):
            raise MissingArgumentError(
                "--weights needs --weights-out: where the rewritten weights go",
                {"weights_out": None},
            )
        if check:
            raise MissingArgumentError(
                "--check needs the weights to compare", {"weights_out": None}
            )
        return None
    if source is None:
        raise MissingArgumentError(
            "--weights-out needs the weights to start from", {"weights": None}
        )
    if getattr(args, "validate", False):
        raise InvalidArgumentError(
            "--validate with --weights-out: write the weights first, then validate", "weights_out"
        )
    if args.diff:
        raise InvalidArgumentError(
            "--diff writes nothing: it does not take --weights-out", "weights_out"
        )
    return WeightsFiles(source, out, check)


def _loaded(args: argparse.Namespace) -> Any:
    """The ``--weights`` file read (with the ``--proto`` schema), or None."""
    if not getattr(args, "weights", None):
        return None
    from protoedit.weights import load

    return load(args.weights, schema=args.proto)


def carrying(rewrite: Rewrite) -> Rewrite:
    """``rewrite`` followed, with ``--weights-out``, by keeping the blobs the net still uses."""

    def run(doc: Any, args: argparse.Namespace) -> Any:
        report = rewrite(doc, args)
        if not getattr(args, "weights_out", None):
            return report
        from protoedit.rewrites.carried import WeightsReport
        from protoedit.rewrites.used_weights import used_weights

        used = used_weights(doc, _loaded(args))
        merged = WeightsReport(weights=used.weights, carried=used.carried)
        return merged.extend(report).extend(used)

    return run


def add_carrying(cmd: argparse.ArgumentParser, *, with_input: bool = True) -> None:
    """``--weights``/``--weights-out`` on a rewrite that only removes layers."""
    if with_input:
        add_weights(cmd, required=False)
    add_weights_out(cmd, check=False)
    hints(cmd, _FLAGS)


def _fold_bn(doc: Any, args: argparse.Namespace) -> Any:
    from protoedit.rewrites import fold_bn

    return fold_bn(doc, _loaded(args))


def _rename(doc: Any, args: argparse.Namespace) -> Any:
    from protoedit.rewrites import rename

    return rename(doc, dict(args.renames), _loaded(args))


def _fully_conv(doc: Any, args: argparse.Namespace) -> Any:
    from protoedit.rewrites import fully_conv

    return fully_conv(doc, _loaded(args))


def _input_channels(doc: Any, args: argparse.Namespace) -> Any:
    from protoedit.rewrites import input_channels

    return input_channels(doc, args.channels, _loaded(args), swap=args.swap_rgb)


def _renaming(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old or not new:
        raise argparse.ArgumentTypeError(f"'{text}' is not OLD=NEW")
    return old, new


def add_weight_rewrites(commands: Commands, command: Command) -> None:
    """The four rewrites that carry weights (``command`` builds the common parser)."""
    cmd = command(
        commands,
        "fold-bn",
        "fold BatchNorm and Scale into the Convolution/InnerProduct before them",
        _fold_bn,
    )
    add_weights(cmd, required=True)
    add_weights_out(cmd, check=True, required=True)
    hints(cmd, _FLAGS)

    cmd = command(commands, "rename", "rename layers together with their weights", _rename)
    cmd.add_argument("renames", nargs="+", type=_renaming, metavar="OLD=NEW", help="layer renames")
    _optional_weights(cmd)

    cmd = command(
        commands,
        "fully-conv",
        "turn the InnerProducts on spatial maps into Convolutions (weights reshaped)",
        _fully_conv,
    )
    _optional_weights(cmd)

    cmd = command(
        commands,
        "input-channels",
        "give the image input another channel count; the first convolution follows",
        _input_channels,
    )
    cmd.add_argument(
        "channels", type=int, metavar="N", help="1 (grey: weights summed) or more (zeros)"
    )
    cmd.add_argument(
        "--swap-rgb", action="store_true", help="also swap channels 0 and 2 (BGR <-> RGB)"
    )
    _optional_weights(cmd, {"input_channels": "N", "swap": "--swap-rgb"})


def _optional_weights(cmd: argparse.ArgumentParser, flags: dict[str, str] | None = None) -> None:
    """``--weights``, ``--weights-out`` and ``--check`` on a rewrite that also works alone."""
    add_weights(cmd, required=False)
    add_weights_out(cmd, check=True)
    hints(cmd, {**_FLAGS, **(flags or {})})
