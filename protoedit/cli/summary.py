"""``protoedit summary``: shapes, parameters, FLOPs, memory and receptive fields per layer, as a
text table, JSON or CSV (a driver over :func:`protoedit.net.summary.summary`)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
from typing import TYPE_CHECKING

from protoedit.cli.options import (
    Commands,
    add_schema,
    add_weights,
    hints,
    int_list,
    positive,
)
from protoedit.files import STDIN

if TYPE_CHECKING:
    from protoedit.net.receptive import ReceptiveField
    from protoedit.net.summary import LayerRow, Summary

_NAMED = re.compile(r"^([^=]+)=(.*)$")


def input_shape(text: str) -> tuple[str | None, list[int]]:
    """``N,C,H,W`` or ``BLOB=N,C,H,W``."""
    match = _NAMED.match(text)
    name, dims = (match.group(1), match.group(2)) if match else (None, text)
    return name, int_list(dims, 1, "N,C,H,W or BLOB=N,C,H,W")


def add_summary(commands: Commands) -> None:
    """``protoedit summary``."""
    cmd = commands.add_parser(
        "summary",
        help="per layer: output shapes, parameters, FLOPs, memory, receptive field",
        description="Summarise NET without Caffe: one row per layer with its type, output "
        "shapes, parameters (count; bytes as float32), MACs and FLOPs (a multiply-add is 2 "
        "FLOPs, any other operation 1; each type's formula is in the layer catalogue), the "
        "memory of the values it adds at the batch (in-place layers add none) and the "
        "receptive field of its output on the input (size/stride/offset of unit 0, per axis), "
        "then the totals. A number protoedit has no rule for is shown as ?, with the reason "
        "after the table; totals then count the known ones. Exit 0; 1 when --weights differs "
        "from the net; 2 on error.",
    )
    cmd.add_argument("net", metavar="NET", help="a .prototxt, or - for stdin")
    add_weights(cmd, required=False)
    cmd.add_argument(
        "--input-shape",
        type=input_shape,
        action="append",
        metavar="[BLOB=]N,C,H,W",
        help="summarise at this input shape (repeat for each input of a net with several)",
    )
    cmd.add_argument("--batch", type=positive, metavar="N", help="axis 0 of every input")
    cmd.add_argument("--input", metavar="BLOB", help="receptive fields on this input blob")
    cmd.add_argument(
        "--phase", choices=["TEST", "TRAIN"], default="TEST", type=str.upper, help="(default TEST)"
    )
    form = cmd.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print one JSON object")
    form.add_argument("--csv", action="store_true", help="print CSV, one row per layer")
    add_schema(cmd, lenient="tolerate fields the schema lacks")
    hints(cmd, {"input_shape": "--input-shape", "batch": "--batch", "input": "--input BLOB"})
    cmd.set_defaults(run=run_summary, usage_error=cmd.error)


def run_summary(args: argparse.Namespace) -> int:
    """Load the net, summarise it, print the table (or JSON, CSV)."""
    from protoedit.document import loads
    from protoedit.files import read_source
    from protoedit.net.summary import summary

    shapes = args.input_shape or []
    named = {name: dims for name, dims in shapes if name is not None}
    if shapes and len(named) not in (0, len(shapes)):
        args.usage_error("--input-shape: name every input (BLOB=N,C,H,W) or give one shape")
    if len(shapes) > 1 and not named:
        args.usage_error("--input-shape: name the inputs (BLOB=N,C,H,W) to give several")
    given = named or (shapes[0][1] if shapes else None)
    path = "<stdin>" if args.net == STDIN else args.net
    doc = loads(read_source(args.net), schema=args.proto, lenient=args.lenient, path=path)
    result = summary(
        doc,
        input_shape=given,
        batch=args.batch,
        weights=args.weights,
        input=args.input,
        phase=args.phase,
    )
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    elif args.csv:
        print(to_csv(result), end="")
    else:
        print(to_text(result), end="")
    return 1 if result.totals.mismatches else 0


def field_text(field: ReceptiveField | None) -> str:
    """``7/2/-3`` (size/stride/offset), per axis ``7x5/2x1/-3x-2`` when they differ."""
    if field is None:
        return "-"

    def axes(values: tuple[int, ...]) -> str:
        return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))

    return f"{axes(field.size)}/{axes(field.stride)}/{axes(field.offset)}"


def _shape(shape: list[int] | None) -> str:
    return "?" if shape is None else "x".join(map(str, shape)) or "scalar"


def _cells(row: LayerRow) -> list[str]:
    from protoedit.net.summary import human

    return [
        row.name,
        row.type,
        ", ".join(_shape(s) for s in row.shapes) or "-",
        human(row.params),
        human(row.macs),
        human(row.flops),
        human(row.memory, bytes_=True),
        field_text(row.fields[0] if row.fields else None),
    ]


HEADER = ["layer", "type", "output", "params", "MACs", "FLOPs", "memory", "field"]


def to_text(result: Summary) -> str:
    """The table, the totals, the convention and the reasons for every ``?``."""
    from protoedit.net.summary import human

    t = result.totals
    table = [HEADER] + [_cells(row) for row in result.rows]
    total = ["total", "", "", human(t.params), human(t.macs), human(t.flops)]
    table.append([*total, human(t.memory, bytes_=True), ""])
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    right = {3, 4, 5, 6}
    lines = [
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in table
    ]
    lines.append(f"{result.convention}")
    lines.append("memory: the values each layer adds at the batch, float32 (in place: none)")
    if result.input is not None:
        lines.append(f"field: size/stride/offset of unit 0 on '{result.input}', in pixels")
    if t.partial:
        lines.append(f"partial totals: {len(t.partial)} layer(s) with unknown numbers")
    lines += _reasons(result.rows)
    lines += [
        f"shared: {row.name} uses {row.shared:,} parameters of an earlier layer (counted once)"
        for row in result.rows
        if row.shared
    ]
    if t.stored_params is not None:
        lines.append(f"weights file: {t.stored_params:,} parameters, {t.mismatches} mismatch(es)")
    lines += [f"! {row.name}: {row.mismatch}" for row in result.rows if row.mismatch]
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


CSV_HEADER = [
    *("layer", "type", "output", "params", "param_bytes", "macs", "flops", "memory"),
    *("field_size", "field_stride", "field_offset", "stored_params", "mismatch", "unknown"),
]


def _reasons(rows: list[LayerRow]) -> list[str]:
    """One line per reason for a ``?``, with the layers it holds for (a cause early in the net
    leaves everything after it unknown: said once)."""
    layers: dict[str, list[str]] = {}
    for row in rows:
        for reason in row.unknown:
            layers.setdefault(reason, []).append(row.name)
    lines = []
    for reason, names in layers.items():
        where = names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} layer(s) after"
        lines.append(f"? {where}: {reason}")
    return lines


def to_csv(result: Summary) -> str:
    """One CSV row per layer, exact numbers (empty when unknown), then the total."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)

    def number(value: int | None) -> str:
        return "" if value is None else str(value)

    for row in result.rows:
        field = row.fields[0] if row.fields else None
        axes = [
            " ".join(map(str, v)) if field else ""
            for v in ((field.size, field.stride, field.offset) if field else ((), (), ()))
        ]
        writer.writerow(
            [row.name, row.type, " ".join(_shape(s) for s in row.shapes)]
            + [number(v) for v in (row.params, row.param_bytes, row.macs, row.flops, row.memory)]
            + axes
            + [number(row.stored_params), row.mismatch or "", "; ".join(row.unknown)]
        )
    t = result.totals
    writer.writerow(
        [
            *("total", "", "", t.params, t.param_bytes, t.macs, t.flops, t.memory, "", "", ""),
            *(number(t.stored_params), t.mismatches or "", "partial" if t.partial else ""),
        ]
    )
    return out.getvalue()
