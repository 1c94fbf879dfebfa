"""``protoedit top-images``: the dataset examples of each unit of a layer (its k strongest
images and, for a spatial layer, the patches in their receptive fields)."""

from __future__ import annotations

import argparse
import sys

from protoedit.cli.explain import _common
from protoedit.cli.messages import say
from protoedit.cli.options import Commands, add_output, add_target, hints, positive, preprocess


def add_top_images(commands: Commands) -> None:
    """``protoedit top-images``."""
    cmd = commands.add_parser(
        "top-images",
        help="each unit's k strongest images (and patches) from a folder of images",
        description="Run NET truncated at --target in Caffe over every image (in batches; "
        "memory does not grow with their number), keep each unit's k highest activations "
        "(a spatial unit: its channel's maximum over positions), and write, in the -o folder, "
        "top-images.json and per unit unit-NNNN-images.png (the images, the patch outlined) "
        "and unit-NNNN-patches.png (the patches, cropped to the unit's receptive field). "
        "Exit 0, 2 on error.",
    )
    cmd.add_argument("net", metavar="NET.prototxt")
    add_target(cmd, True, "the layer (or blob) whose units to rank images for")
    cmd.add_argument(
        "--images",
        nargs="+",
        required=True,
        metavar="DIR|FILE",
        help="a folder of images (sorted, sub-folders included) or image / .npy files",
    )
    cmd.add_argument("-k", type=positive, default=9, metavar="K", help="images per unit")
    cmd.add_argument("--batch", type=positive, default=64, help="images per Caffe request")
    cmd.add_argument(
        "--after-inplace",
        action="store_true",
        help="rank by the target after the in-place layers that follow it (default before)",
    )
    cmd.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_output(cmd, "FOLDER", "where the pictures and top-images.json go", required=True)
    _common(cmd)
    hints(cmd, {"target": "--target LAYER", "weights": "--weights MODEL.caffemodel"})
    cmd.set_defaults(run=run_top_images)


def run_top_images(args: argparse.Namespace) -> int:
    """Rank, write the pictures, print each unit's best image."""
    from pathlib import Path

    from protoedit.explain.top_images import TopImagesFinder
    from protoedit.explain.top_pictures import unit_pictures

    with TopImagesFinder(
        args.net,
        weights=args.weights,
        target=args.target,
        after_inplace=args.after_inplace,
        preprocess=preprocess(args),
        timeout=args.timeout,
        allow_python_layers=args.allow_python_layers,
        strict_weights=args.strict_weights,
    ) as finder:
        stream = finder.stream(args.images if len(args.images) > 1 else args.images[0])
        result = finder.find(stream, k=args.k, batch=args.batch, progress=not args.quiet and None)
    for line in finder.report.flagged:  # the rest is how the net was cut, not news
        say(f"flagged: {line}")
    for warning in result.warnings:
        say(f"warning: {warning}")
    if result.receptive is None and result.positions.shape[2]:
        say(f"warning: no patches: {result.field_reason}")
    written = unit_pictures(result, stream, args.output)
    for unit, row in enumerate(result.values):
        best = result.names[int(result.indices[unit, 0])]
        print(f"unit {unit}: {row[0]:.6g} ({Path(best).name}) .. {row[-1]:.6g}")
    print(f"wrote {len(written)} files to {args.output}", file=sys.stderr)
    return 0
