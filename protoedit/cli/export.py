"""``protoedit export``: a net (and its weights) as an ONNX model, optionally checked blob by
blob against Caffe (``--check``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from protoedit.cli.messages import say
from protoedit.cli.options import (
    Commands,
    add_output,
    add_preprocess,
    add_schema,
    add_timeout,
    add_weights,
    dims,
    hints,
    index,
    positive,
    preprocess,
)

_FLAGS = {
    "input_shape": "--input-shape N,C,H,W",
    "until": "--until LAYER",
    "opset": "--opset N",
    "weights": "--weights MODEL.caffemodel",
}


def _input_shape(text: str) -> tuple[str | None, list[int]]:
    """``N,C,H,W`` or ``NAME=N,C,H,W``."""
    name, sep, rest = text.rpartition("=")
    return (name if sep else None), dims(rest)


def add_export(commands: Commands) -> None:
    """``protoedit export``."""
    cmd = commands.add_parser(
        "export",
        help="export a net to ONNX (and check it against Caffe with --check)",
        description="Write NET (upgraded and filtered to the TEST phase) as an ONNX model whose "
        "values carry Caffe's blob names. Without --weights the weights are random, calibrated "
        "so every activation keeps a unit spread. --check runs Caffe and onnxruntime on the "
        "same seeded inputs (declared size, an odd size, batch 2) and compares every blob. "
        "Layers with no ONNX form are refused by name. Exit 0 written (and checked), 1 the "
        "check found a divergence or could not run Caffe, 2 error.",
    )
    cmd.add_argument("file", metavar="NET.prototxt", help="the net")
    add_output(cmd, "MODEL.onnx", "where to write the model (needed unless --check)")
    add_weights(cmd, required=False)
    add_schema(cmd)
    cmd.add_argument(
        "--opset", type=positive, default=None, metavar="N", help="ONNX opset (default 17)"
    )
    cmd.add_argument(
        "--input-shape",
        type=_input_shape,
        action="append",
        default=[],
        metavar="[NAME=]N,C,H,W",
        help="the input's shape instead of the declared one (repeat with NAME= for several "
        "inputs); the batch stays dynamic in the model",
    )
    cmd.add_argument("--until", metavar="LAYER", help="export the layers before LAYER only")
    cmd.add_argument("--seed", type=index, default=0, help="seed of the random weights and inputs")
    cmd.add_argument("--check", action="store_true", help="compare with Caffe, blob by blob")
    cmd.add_argument("--json", action="store_true", help="print the check's report as JSON")
    cmd.add_argument(
        "--image", action="append", default=[], metavar="FILE", help="also check on this image"
    )
    add_preprocess(cmd)
    add_timeout(cmd, None, "limit for each Caffe request of --check, in seconds")
    cmd.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar; print only errors"
    )
    hints(cmd, _FLAGS)
    cmd.set_defaults(run=run)


def _refuse_unused(args: argparse.Namespace) -> None:
    from protoedit.errors import ProtoeditError

    if not args.check:
        unused = [flag for flag, given in (("--json", args.json), ("--image", args.image)) if given]
        unused += ["--timeout"] if args.timeout is not None else []
        if unused:
            raise ProtoeditError(f"{', '.join(unused)} only apply with --check")
        if args.output is None:
            raise ProtoeditError("say where to write the model (-o MODEL.onnx), or pass --check")
    defaults = {"rgb": False, "mean": None, "mean_file": None, "scale": 1.0, "crop": False}
    changed = [k for k, v in defaults.items() if getattr(args, k) != v]
    if changed and not args.image:
        names = ", ".join("--" + k.replace("_", "-") for k in changed)
        raise ProtoeditError(f"{names} only apply with --image")


def run(args: argparse.Namespace) -> int:
    """Export (and check); the exit code."""
    _refuse_unused(args)
    import protoedit
    from protoedit.export import DEFAULT_OPSET, check, export
    from protoedit.files import write_atomic_bytes

    doc = protoedit.load(args.file, args.proto)
    shape: Any = None
    if args.input_shape:
        named = {name: value for name, value in args.input_shape}
        shape = named[None] if list(named) == [None] else named
        if None in named and len(named) > 1:
            from protoedit.errors import InvalidArgumentError

            raise InvalidArgumentError(
                "give NAME= on every --input-shape for several", "input_shape"
            )
    options = {
        "opset": args.opset or DEFAULT_OPSET,
        "input_shape": shape,
        "until": args.until,
        "seed": args.seed,
    }
    progress = False if args.quiet else None
    exported = export(doc, args.weights, **options, progress=progress)
    if args.output is not None:
        write_atomic_bytes(args.output, [exported.model.SerializeToString()])
        if not args.quiet:
            layers = len(exported.built.layers)
            say(f"wrote {args.output}: {layers} layers, {len(exported.model.graph.node)} nodes")
    if not args.check:
        return 0
    from protoedit.caffe import session

    with session(**({"request_timeout": args.timeout} if args.timeout else {})) as opened:
        report = check(
            doc,
            args.weights,
            **options,
            images=args.image,
            preprocess=preprocess(args) if args.image else None,
            session=opened,
            exported=exported,
            progress=progress,
        )
    if args.json:
        print(json.dumps(report.to_dict(), default=float))
    elif not args.quiet or not report.ok:
        print("\n".join(line for line in report.lines() if line), file=sys.stdout)
    return 0 if report.ok else 1
