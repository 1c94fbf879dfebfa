"""Argument types and the option groups several commands share (preprocessing, weights,
timeout, Python layers, the NetState, the loss head), each spelt once."""

from __future__ import annotations

import argparse
import math
import re
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

if TYPE_CHECKING:
    from protoedit.explain import Preprocess
    from protoedit.rewrites import LossHead

#: ``commands.add_parser`` of the top-level parser, as each command family receives it.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str) -> int:
    """``4G``, ``512M``, ``1.5GiB`` or a byte count; ``0`` means no limit."""
    match = _SIZE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 4G or 512M)")
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[unit.lower()])


def int_list(text: str, minimum: int, form: str) -> list[int]:
    """Comma-separated integers of at least ``minimum`` (``form`` names them in errors)."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {form} (integers), got {text!r}") from None
    if any(v < minimum for v in values):
        raise argparse.ArgumentTypeError(f"values must be at least {minimum}, got {text!r}")
    return values


def positive(text: str) -> int:
    """One integer of at least 1."""
    values = int_list(text, 1, "N")
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"expected one integer, got {text!r}")
    return values[0]


def index(text: str) -> int:
    """One integer of at least 0 (a channel, a class, a seed)."""
    values = int_list(text, 0, "K")
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"expected one integer, got {text!r}")
    return values[0]


def finite(text: str) -> float:
    """A finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def nonzero(text: str) -> float:
    """A finite number other than 0 (a scale, a loss weight)."""
    value = finite(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must not be 0, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """A timeout: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def dims(text: str) -> list[int]:
    """``N,C,H,W``: positive dimensions."""
    return int_list(text, 1, "N,C,H,W")


def unit(text: str) -> list[int]:
    """``K`` or ``K,H,W``: indices."""
    return int_list(text, 0, "K or K,H,W")


def floats(text: str) -> tuple[float, ...]:
    """``B,G,R`` (or one value): finite numbers."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 104,117,123: {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    return values


def hints(cmd: argparse.ArgumentParser, flags: Any) -> None:
    """Name the option that sets each library parameter (``{"stages": "--stage S"}``), or a
    function of the parsed arguments giving them: what the error boundary's hints name."""
    cmd.set_defaults(flags=flags)


def add_weights(cmd: argparse.ArgumentParser | Any, required: bool = True) -> None:
    """``--weights MODEL.caffemodel`` and ``--strict-weights``: the weights meet the net by
    the one rule of :mod:`protoedit.weights` (none of its layers that learn stored: an
    error; some: one warning, or an error with ``--strict-weights``)."""
    cmd.add_argument(
        "--weights",
        required=required,
        metavar="MODEL.caffemodel",
        help="the trained weights (a file that holds none of the net's layers that learn is "
        "refused; layers missing from it are named in one warning)",
    )
    cmd.add_argument(
        "--strict-weights",
        action="store_true",
        help="every layer of the net that learns must be in the weights file",
    )


def add_output(
    cmd: argparse.ArgumentParser | Any, metavar: str, what: str, required: bool = False
) -> None:
    """``-o/--output``: where a command writes its result."""
    cmd.add_argument("-o", "--output", required=required, metavar=metavar, help=what)


def add_timeout(cmd: argparse.ArgumentParser | Any, default: float | None, what: str) -> None:
    """``--timeout SECONDS``: positive, for every command that runs Caffe."""
    cmd.add_argument(
        "--timeout", type=positive_seconds, default=default, metavar="SECONDS", help=what
    )


def add_python_layers(cmd: argparse.ArgumentParser) -> None:
    """``--allow-python-layers``: the one gate for nets whose Python layers import code."""
    cmd.add_argument(
        "--allow-python-layers",
        action="store_true",
        help='run nets with type: "Python" layers (they execute user code on load)',
    )


def add_preprocess(cmd: argparse.ArgumentParser, crop: bool = True) -> None:
    """The Caffe-way image preprocessing options of grad, saliency, visualize and sweep."""
    cmd.add_argument("--rgb", action="store_true", help="keep RGB (default: BGR, as Caffe)")
    mean = cmd.add_mutually_exclusive_group()
    mean.add_argument("--mean", type=floats, metavar="B,G,R", help="mean per channel")
    mean.add_argument("--mean-file", metavar="MEAN.binaryproto", help="a mean image")
    cmd.add_argument(
        "--scale", type=nonzero, default=1.0, help="multiplier after the mean (default 1: 0-255)"
    )
    if crop:
        cmd.add_argument(
            "--crop",
            action="store_true",
            help="scale the shorter side and centre-crop (default: resize to the input size)",
        )


def preprocess(args: argparse.Namespace) -> Preprocess:
    """The ``Preprocess`` the options of :func:`add_preprocess` describe."""
    from protoedit.explain import Preprocess

    fit: Literal["resize", "crop"] = "crop" if getattr(args, "crop", False) else "resize"
    return Preprocess(
        rgb=args.rgb, mean=args.mean, mean_file=args.mean_file, scale=args.scale, fit=fit
    )


def arrays_only(args: argparse.Namespace, files: list[str]) -> None:
    """Refuse the preprocessing options when every input is a ``.npy`` (the blob as fed:
    they would be ignored)."""
    from protoedit.errors import ProtoeditError

    if not all(name.lower().endswith(".npy") for name in files):
        return
    given = [
        flag
        for flag, dest, default in _PREPROCESSING
        if getattr(args, dest, default) not in (default, None)
    ]
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        raise ProtoeditError(
            f"{', '.join(given)} {verb} to image files; a .npy is the blob as fed to the net, "
            "taken as it is"
        )


_PREPROCESSING = (
    ("--rgb", "rgb", False),
    ("--mean", "mean", None),
    ("--mean-file", "mean_file", None),
    ("--scale", "scale", 1.0),
    ("--crop", "crop", False),
)


def add_state(cmd: argparse.ArgumentParser) -> None:
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


def add_target(cmd: argparse.ArgumentParser | Any, required: bool, what: str) -> None:
    """``--target``: the one spelling of the layer or blob a command works at."""
    cmd.add_argument("--target", required=required, metavar="TARGET", help=what)


def add_head(cmd: argparse.ArgumentParser) -> None:
    """What a loss head measures on the target: a channel, a unit, a class logit, the norm."""
    what = cmd.add_mutually_exclusive_group()
    what.add_argument("--channel", type=index, metavar="K", help="one channel (default 0)")
    what.add_argument("--class", dest="logit", type=index, metavar="K", help="one class logit")
    what.add_argument("--sumsq", action="store_true", help="the whole blob's squared norm")
    what.add_argument(
        "--unit",
        type=unit,
        metavar="K[,H,W]",
        help="one unit: channel K at H,W (default the centre), averaged over the batch",
    )
    cmd.add_argument(
        "--reduce",
        choices=["mean", "sum"],
        help="over the batch and positions (default mean; sum for --sumsq, where mean "
        "averages the squares)",
    )
    cmd.add_argument("--weight", type=nonzero, default=1.0, help="loss weight (negative: minimise)")
    cmd.add_argument(
        "--channels",
        type=positive,
        metavar="N",
        help="channels of the target when the layers do not tell",
    )
    cmd.add_argument(
        "--after-inplace",
        action="store_true",
        help="the value after the in-place layers that follow the target",
    )


def head(args: argparse.Namespace) -> LossHead:
    """The ``LossHead`` the options of :func:`add_head` describe."""
    from protoedit.rewrites import LossHead

    if args.sumsq:
        return LossHead("sumsq", 0, args.reduce, args.weight)
    if args.unit is not None:
        position = tuple(args.unit[1:]) or None
        return LossHead("unit", args.unit[0], args.reduce, args.weight, position)
    if args.logit is not None:
        return LossHead("logit", args.logit, args.reduce, args.weight)
    return LossHead("channel", args.channel or 0, args.reduce, args.weight)


def head_flags(args: argparse.Namespace) -> dict[str, str]:
    """The options behind the parameters of a head: ``head`` is the head option given."""
    given = next(
        (flag for flag, value in _HEAD_OPTIONS if getattr(args, value) not in (None, False)),
        "--channel K",
    )
    return {"head": given, "target_channels": "--channels N", "reduce": "--reduce mean|sum"}


_HEAD_OPTIONS = (("--class K", "logit"), ("--unit K[,H,W]", "unit"), ("--sumsq", "sumsq"))


def add_exclude(cmd: argparse.ArgumentParser) -> None:
    """``--exclude PATTERN``: files and folders a folder argument skips."""
    cmd.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="skip matching files and folders (gitignore syntax, relative to the current "
        "folder; also for files named one by one); repeatable",
    )


def add_schema(cmd: argparse.ArgumentParser, lenient: str | None = None) -> None:
    """``--proto`` (a fork's schema) and, when ``lenient`` says what happens, ``--lenient``."""
    cmd.add_argument("--proto", metavar="PATH", help="a fork's caffe.proto instead of the built-in")
    if lenient is not None:
        cmd.add_argument("--lenient", action="store_true", help=lenient)
