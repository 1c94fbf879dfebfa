"""``protoedit weights show|export|import|diff``: ``.caffemodel`` files without Caffe."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import TYPE_CHECKING

from protoedit.cli.options import Commands, add_output, add_schema

if TYPE_CHECKING:
    from protoedit.document import Document
    from protoedit.weights.compare import WeightsDiff
    from protoedit.weights.stats import LayerStats


def add_weights_commands(commands: Commands) -> None:
    """``protoedit weights`` and its subcommands."""
    cmd = commands.add_parser(
        "weights",
        help="show, export, import and compare .caffemodel files (no Caffe needed)",
        description="Read and write Caffe weights files without Caffe. Blobs are named "
        "LAYER/ROLE (conv1/weight, bn1/mean, ...).",
    )
    actions = cmd.add_subparsers(dest="action", required=True, metavar="ACTION")

    show = actions.add_parser(
        "show",
        help="each layer's blobs: shape, count, min, max, mean, std; and a total",
        description="Per stored layer with blobs: each blob's shape, count and statistics, "
        "then the total. Roles come from NET's layers when --net is given. Exit 0, 2 on error.",
    )
    show.add_argument("model", metavar="MODEL.caffemodel")
    show.add_argument("--net", metavar="NET", help="the net the weights are for (blob roles)")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_schema(show)
    show.set_defaults(run=run_show)

    export = actions.add_parser(
        "export",
        help="write the blobs to .npz, .h5 or .safetensors, keyed LAYER/ROLE",
        description="Write every blob of MODEL to OUT (format by extension: .npz, .h5, "
        ".safetensors), keyed LAYER/ROLE. Exit 0, 2 on error.",
    )
    export.add_argument("model", metavar="MODEL.caffemodel")
    add_output(export, "OUT", "the array file to write (.npz, .h5, .safetensors)", True)
    export.add_argument("--net", metavar="NET", help="the net the weights are for (blob roles)")
    add_schema(export)
    export.set_defaults(run=run_export)

    imported = actions.add_parser(
        "import",
        help="build a .caffemodel for NET from .npz, .h5 or .safetensors arrays",
        description="Build a .caffemodel for NET from an array file keyed LAYER/ROLE (as "
        "'weights export' writes). Every array must fit NET's layer; a layer that learns but "
        "has no arrays is a warning (an error with --strict-weights). Exit 0, 2 on error.",
    )
    imported.add_argument("arrays", metavar="IN.{npz,h5,safetensors}")
    imported.add_argument("--net", required=True, metavar="NET", help="the net to build for")
    add_output(imported, "OUT.caffemodel", "the weights file to write", True)
    imported.add_argument(
        "--strict-weights", action="store_true", help="every layer that learns must have arrays"
    )
    add_schema(imported)
    imported.set_defaults(run=run_import)

    diff = actions.add_parser(
        "diff",
        help="compare two weights files blob by blob",
        description="Per blob of A and B (matched by LAYER/ROLE): the largest absolute and "
        "relative difference; blobs in one file only. Exit 0 same, 1 they differ, 2 error.",
    )
    diff.add_argument("a", metavar="A.caffemodel")
    diff.add_argument("b", metavar="B.caffemodel")
    add_schema(diff)
    diff.set_defaults(run=run_diff)


def _net(path: str | None, proto: str | None) -> Document | None:
    from protoedit.document import load

    return load(path, schema=proto) if path is not None else None


def run_show(args: argparse.Namespace) -> int:
    """Load the weights (and the net), print the table or JSON."""
    from protoedit.weights import load
    from protoedit.weights.stats import as_json, describe

    layers = describe(load(args.model, schema=args.proto), _net(args.net, args.proto))
    if args.json:
        json.dump(as_json(layers), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_table(layers)
    return 0


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def print_table(layers: list[LayerStats]) -> None:
    """One row per blob, then the total."""
    from protoedit.validate.report import format_size
    from protoedit.weights.fit import dims
    from protoedit.weights.stats import as_json

    head = ("layer", "type", "blob", "shape", "count", "min", "max", "mean", "std")
    rows = [
        (
            b.layer,
            layer.type,
            b.role,
            dims(b.shape).replace(" ", ""),
            str(b.count),
            *(_number(v) for v in (b.min, b.max, b.mean, b.std)),
        )
        for layer in layers
        for b in layer.blobs
    ]
    widths = [max(len(row[k]) for row in [head, *rows]) for k in range(len(head))]
    for row in [head, *rows]:
        cells = [
            cell.rjust(width) if k >= 4 else cell.ljust(width)
            for k, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
    total = as_json(layers)["total"]
    print(
        f"total: {total['count']} values in {total['blobs']} blobs of {total['layers']} "
        f"layers ({format_size(total['bytes'])})"
    )


def run_export(args: argparse.Namespace) -> int:
    """Load the weights and write the array file."""
    from protoedit.weights import load
    from protoedit.weights.formats import export_arrays, format_of

    format_of(args.output)  # refuse an unknown format before reading anything
    export_arrays(load(args.model, schema=args.proto), args.output, net=_net(args.net, args.proto))
    return 0


def run_import(args: argparse.Namespace) -> int:
    """Read the arrays, build the weights for the net, write the caffemodel."""
    from protoedit.cli.rewrite_file import say_warnings
    from protoedit.errors import ProtoeditWarning
    from protoedit.weights import save
    from protoedit.weights.formats import import_arrays

    net = _net(args.net, args.proto)
    assert net is not None  # --net is required
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ProtoeditWarning)
        try:
            weights = import_arrays(args.arrays, net, strict=args.strict_weights)
        finally:
            say_warnings(caught)
    save(weights, args.output)
    return 0


def run_diff(args: argparse.Namespace) -> int:
    """Compare the two files; exit 1 when they differ."""
    from protoedit.weights import load
    from protoedit.weights.compare import compare

    found = compare(load(args.a, schema=args.proto), load(args.b, schema=args.proto))
    print_diff(found, args.a, args.b)
    return 0 if found.same else 1


def print_diff(found: WeightsDiff, a: str, b: str) -> None:
    """One line per blob that differs, then the blobs in one file only, then a summary."""
    from protoedit.weights.fit import dims

    for blob in found.blobs:
        if blob.equal:
            continue
        if blob.max_abs is None:
            print(f"{blob.key}: shape {dims(blob.shape_a)} in A, {dims(blob.shape_b)} in B")
        else:
            print(f"{blob.key}: max abs {blob.max_abs:.6g}, max rel {blob.max_rel:.6g}")
    for key in found.only_a:
        print(f"{key}: only in A ({a})")
    for key in found.only_b:
        print(f"{key}: only in B ({b})")
    equal = sum(1 for blob in found.blobs if blob.equal)
    print(f"{equal} of {len(found.blobs)} blobs in both files are equal bit for bit" + _tail(found))


def _tail(found: WeightsDiff) -> str:
    extra = len(found.only_a) + len(found.only_b)
    return f"; {extra} in one file only" if extra else ""
