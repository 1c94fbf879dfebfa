"""``protoedit grad`` and ``visualize``: what a net's output owes its input (``saliency`` is in
:mod:`protoedit.cli.saliency`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from protoedit.cli.messages import say
from protoedit.cli.options import (
    Commands,
    add_head,
    add_output,
    add_preprocess,
    add_python_layers,
    add_target,
    add_timeout,
    add_weights,
    arrays_only,
    head,
    head_flags,
    hints,
    index,
    positive,
    preprocess,
    unit,
)
from protoedit.validate import DEFAULT_TIMEOUT

_TIMEOUT = f"Caffe's limit (default {DEFAULT_TIMEOUT:g})"


def _explain_flags(args: argparse.Namespace) -> dict[str, str]:
    """The options of grad and saliency, by library parameter."""
    return {
        **head_flags(args),
        "target": "--target LAYER",
        "inputs": "--input BLOB=FILE",
        "weights": "--weights MODEL.caffemodel",
        "blobs": "--blobs NAMES",
        "layer": "--layer LAYER",
    }


def _common(cmd: argparse.ArgumentParser, crop: bool = True) -> None:
    """What every explain command takes besides its own options."""
    add_weights(cmd)
    add_preprocess(cmd, crop=crop)
    add_python_layers(cmd)
    add_timeout(cmd, DEFAULT_TIMEOUT, _TIMEOUT)


def _quiet(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "-q", "--quiet", action="store_true", help="no report of the in-memory rewrite"
    )


def _rewrite_report(args: argparse.Namespace, result: Any) -> None:
    """What the in-memory rewrite did (unless -q), then the warnings (always)."""
    for line in [] if args.quiet else result.report.lines(fold=True):
        say(line)
    for warning in result.warnings:
        say(f"warning: {warning}")


def add_grad(commands: Commands) -> None:
    """``protoedit grad``."""
    cmd = commands.add_parser(
        "grad",
        help="gradients of a loss by layer name: every parameter and every input",
        description="Rewrite NET in memory for a loss (an activation head on --target, or the "
        "net's own --loss blob), run one forward and backward in Caffe in a child process, and "
        "print layer, role, shape, |grad| and |grad|/|param| for every learnable blob and "
        "input (and the blobs --blobs names). -o writes them as .npz (keys LAYER/ROLE, "
        "input/BLOB, blob/NAME; a blob written in place has blob/NAME/before and "
        "blob/NAME/after its in-place layers). NET may be a solver: its training net runs in "
        "phase TRAIN. Exit 0, 2 on error.",
    )
    cmd.add_argument("net", metavar="NET.prototxt")
    cmd.add_argument(
        "--blobs",
        metavar="NAMES",
        help="also the gradients of these blobs of the data stream: conv1,pool2 or all",
    )
    cmd.add_argument(
        "--input",
        action="append",
        required=True,
        metavar="[BLOB=]FILE",
        help="an image (PNG/JPEG) or .npy for the input blob; BLOB=FILE when there are several "
        "(repeat --input for each)",
    )
    what = cmd.add_mutually_exclusive_group(required=True)
    add_target(what, False, "the layer the loss head measures")
    what.add_argument("--loss", metavar="BLOB", help="the net's own loss blob instead")
    add_head(cmd)
    add_output(cmd, "GRADS.npz", "write every gradient here")
    _quiet(cmd)
    _common(cmd)
    hints(cmd, _explain_flags)
    cmd.set_defaults(run=run_grad)


def _grad_inputs(given: list[str]) -> Any:
    """``FILE`` alone for the only input blob, else ``BLOB=FILE`` pairs."""
    import os

    from protoedit.errors import MissingArgumentError

    pairs = {}
    for text in given:
        name, sep, path = text.partition("=")
        if not sep or os.path.exists(text):
            if len(given) == 1:
                return text
            raise MissingArgumentError(
                f"name the blob of each input, not {text!r}", {"inputs": None}
            )
        pairs[name] = path
    return pairs


def _blob_list(text: str | None) -> list[str] | str:
    """``--blobs``: ``all`` or comma-separated names."""
    if text is None:
        return []
    if text.strip() == "all":
        return "all"
    return [name.strip() for name in text.split(",") if name.strip()]


def run_grad(args: argparse.Namespace) -> int:
    """Compute the gradients, print the report and the table, write the .npz."""
    from protoedit.explain import gradients

    arrays_only(args, [text.partition("=")[2] or text for text in args.input])
    result = gradients(
        args.net,
        weights=args.weights,
        inputs=_grad_inputs(args.input),
        target=args.target,
        head=head(args) if args.target else None,
        loss=args.loss,
        preprocess=preprocess(args),
        after_inplace=args.after_inplace,
        target_channels=args.channels,
        blobs=_blob_list(args.blobs),
        timeout=args.timeout,
        allow_python_layers=args.allow_python_layers,
        strict_weights=args.strict_weights,
    )
    if args.output:
        result.save(args.output)
    _rewrite_report(args, result)
    rows = [("layer", "role", "shape", "|grad|", "|grad|/|param|")]
    for layer, role, shape, norm, ratio in result.rows():
        dims = "x".join(map(str, shape))
        rows.append((layer, role, dims, f"{norm:.6g}", "-" if ratio is None else f"{ratio:.6g}"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"loss: {result.loss:.9g}")
    if args.output:
        say(f"wrote {args.output}")
    return 0


def add_visualize(commands: Commands) -> None:
    """``protoedit visualize``."""
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
    add_target(cmd, False, "the layer (or blob) whose units to show")
    what = cmd.add_mutually_exclusive_group()
    what.add_argument("--channels", metavar="0-15", help="channels, e.g. 0-15 or 1,4,9")
    what.add_argument(
        "--units", type=unit, nargs="+", metavar="K[,H,W]", help="units: channel K at H,W"
    )
    what.add_argument(
        "--class",
        dest="logit",
        type=index,
        metavar="K",
        help="one class of a classifier (the target defaults to the last Softmax's input)",
    )
    cmd.add_argument(
        "--preset",
        default="default",
        metavar="NAME",
        help="default, or yosinski1..yosinski4 (the four sets of Yosinski et al. 2015)",
    )
    cmd.add_argument(
        "--steps", type=positive, metavar="N", help="iterations (default: the preset's)"
    )
    cmd.add_argument("--seed", type=index, default=0, help="the noise and jitter seed")
    cmd.add_argument("--octaves", type=positive, metavar="N", help="image scales, coarse to fine")
    cmd.add_argument("--batch", type=positive, default=16, help="units optimised together")
    cmd.add_argument("--start", metavar="FILE", help="begin from this image or .npy, not noise")
    cmd.add_argument(
        "--after-inplace",
        action="store_true",
        help="measure the target after the in-place layers that follow it (default before)",
    )
    cmd.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_output(cmd, "GRID.png", "the grid (each unit's files go beside it)", required=True)
    _common(cmd, crop=False)
    hints(cmd, _visualize_flags)
    cmd.set_defaults(run=run_visualize)


def _visualize_flags(args: argparse.Namespace) -> dict[str, str]:
    """visualize's options by library parameter: ``objectives`` come from the one given."""
    chosen = "--class K" if args.logit is not None else "--units K[,H,W]"
    if args.logit is None and not args.units:
        chosen = "--channels 0-15"
    return {
        "objectives": chosen,
        "target": "--target LAYER",
        "preset": "--preset NAME",
        "weights": "--weights MODEL.caffemodel",
    }


def run_visualize(args: argparse.Namespace) -> int:
    """Optimise the units, write the grid and its files, print each unit's activations."""
    from dataclasses import replace

    from protoedit.errors import InvalidArgumentError, MissingArgumentError
    from protoedit.explain.maximisation import visualize
    from protoedit.explain.objectives import Unit, parse_channels
    from protoedit.explain.settings import PRESETS
    from protoedit.explain.vis_net import classifier_target

    if args.preset not in PRESETS:
        raise InvalidArgumentError(
            f"no preset {args.preset!r}; the presets: {', '.join(PRESETS)}", "preset"
        )
    settings = replace(PRESETS[args.preset], seed=args.seed)
    if args.steps is not None:
        settings = replace(settings, steps=args.steps)
    if args.octaves is not None:
        settings = replace(settings, octaves=args.octaves)
    target = args.target
    if target is None:
        if args.logit is None:
            raise MissingArgumentError("name the layer to visualise", {"target": None})
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
        preprocess=preprocess(args),
        start=args.start,
        batch=args.batch,
        after_inplace=args.after_inplace,
        progress=False if args.quiet else None,
        timeout=args.timeout,
        allow_python_layers=args.allow_python_layers,
        strict_weights=args.strict_weights,
    )
    written = result.save(args.output)
    for result_unit in result.results:
        dead = " (dead at the start)" if result_unit.dead_at_start else ""
        print(
            f"{result_unit.label}: {result_unit.start:.6g} -> {result_unit.end:.6g} in "
            f"{result_unit.steps} steps{dead}"
        )
    print(f"wrote {written[0]} and {len(written) - 1} files next to it", file=sys.stderr)
    return 0
