"""``protoedit sweep`` (a resumable activation-maximisation sweep) and its ``report``."""

from __future__ import annotations

import argparse
import warnings
from typing import Any

from protoedit.cli.messages import say
from protoedit.cli.options import (
    Commands,
    add_output,
    add_preprocess,
    add_python_layers,
    add_weights,
    hints,
    index,
    positive,
    preprocess,
)

#: Exit code of an interrupted sweep (the store stays consistent; run it again to finish).
EXIT_INTERRUPTED = 130

#: Library parameter -> (option, its dest): the parameters a sweep's errors may name.
_SWEEP_FLAGS = {
    "channels": ("--channels all|0-63", "channels"),
    "batch": ("--batch N", "batch"),
    "steps": ("--steps N", "steps"),
    "preset": ("--preset NAME", "preset"),
    "address": ("--address ADDR", "address"),
}


def add_sweep(commands: Commands) -> None:
    """``protoedit sweep`` and ``protoedit sweep report``."""
    cmd = commands.add_parser(
        "sweep",
        help="visualise every unit of a model's layers, resumable, on all cores or a Ray cluster",
        description="Expand a plan (--plan PLAN.toml, or --net/--weights/--layers/--channels) "
        "into batches of units, run activation maximisation on them in parallel (--engine "
        "local: one worker per core; --engine ray: Ray actors, --address for a cluster), and "
        "store each batch as it is done in --store (SQLite plus images). Run it again to "
        "finish a killed or interrupted sweep: only what is missing is computed; changed "
        "settings make new results. `sweep report STORE -o DIR` writes an HTML contact sheet. "
        "Exit 0, 1 when units failed (after one retry), 2 on error, 130 on Ctrl-C.",
    )
    cmd.add_argument("--plan", metavar="PLAN.toml", help="a TOML plan (instead of --net ...)")
    cmd.add_argument("--net", metavar="NET.prototxt")
    add_weights(cmd, required=False)
    cmd.add_argument("--layers", metavar="A,B", help="the layers (or blobs) to sweep")
    cmd.add_argument("--channels", metavar="all|0-63", help="channels of each layer (all)")
    cmd.add_argument("--store", metavar="DIR", help="the results folder (created if needed)")
    cmd.add_argument("--engine", choices=("local", "ray"), help="where to run (default local)")
    cmd.add_argument("--address", metavar="ADDR", help="a Ray cluster (ray engine; e.g. auto)")
    cmd.add_argument(
        "--workers", type=positive, metavar="N", help="workers (default: one per core)"
    )
    cmd.add_argument("--batch", type=positive, metavar="N", help="units per work item (default 8)")
    cmd.add_argument("--preset", metavar="NAME", help="ascent settings preset (default: default)")
    cmd.add_argument(
        "--steps", type=positive, metavar="N", help="iterations (default: the preset's)"
    )
    cmd.add_argument("--seed", type=index, help="the noise and jitter seed")
    cmd.add_argument(
        "--images",
        metavar="DIR",
        help="also rank this folder's images for every unit (top-k images and patches, "
        "resumable; shown by sweep report)",
    )
    cmd.add_argument("-k", type=positive, metavar="K", help="--images: images per unit (9)")
    add_preprocess(cmd, crop=False)
    add_python_layers(cmd)
    cmd.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    hints(cmd, _flags)
    cmd.set_defaults(run=run_sweep)
    below = cmd.add_subparsers(dest="sweep_command", metavar="report")
    report = below.add_parser(
        "report",
        help="write the HTML contact sheet of a store",
        description="Write ATLAS_DIR/index.html: per model and layer, a grid of the unit "
        "images with their activations, sortable, opening from disk. Exit 0, 2 on error.",
    )
    report.add_argument("store_dir", metavar="STORE", help="the sweep's results folder")
    add_output(report, "ATLAS_DIR", "the folder of the contact sheet", required=True)
    report.set_defaults(run=run_report)


def _flags(args: argparse.Namespace) -> dict[str, str]:
    """The options that set what a sweep's error names: every one without a plan file, the
    ones given with it (the plan file sets the others, and its errors say where)."""
    return {
        parameter: option
        for parameter, (option, dest) in _SWEEP_FLAGS.items()
        if not args.plan or getattr(args, dest) is not None
    }


def run_report(args: argparse.Namespace) -> int:
    """Write the contact sheet."""
    from protoedit.sweep import write_report

    say(f"wrote {write_report(args.store_dir, args.output)}")
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    """Make the plan (from the file or the flags, flags overriding), run what is missing."""
    from dataclasses import asdict, replace

    from protoedit.errors import ProtoeditError, ProtoeditWarning
    from protoedit.sweep import SweepInterrupted
    from protoedit.sweep import run_sweep as sweep
    from protoedit.sweep.plan import make_settings

    if args.k is not None and not args.images:
        raise ProtoeditError("-k applies with --images only")
    given = _plan_file(args)
    overrides = {
        k: v
        for k, v in (("preset", args.preset), ("steps", args.steps), ("seed", args.seed))
        if v is not None
    }
    plan = given.plan
    if overrides:
        preset = overrides.pop("preset", None)
        base = make_settings({"preset": preset}) if preset else plan.settings
        plan = replace(plan, settings=make_settings({**asdict(base), **overrides}))
    if args.batch is not None:
        plan = replace(plan, batch=args.batch)
    store = args.store or given.store
    if not store:
        raise ProtoeditError("name the results folder with --store DIR")
    try:
        with warnings.catch_warnings():  # the weights' warning, as soon as they are checked
            warnings.simplefilter("always", ProtoeditWarning)
            warnings.showwarning = _say_warning
            summary = sweep(
                plan,
                store,
                engine=args.engine or given.engine or "local",
                workers=args.workers or given.workers,
                address=args.address or given.address,
                progress=False if args.quiet else None,
                allow_python_layers=args.allow_python_layers,
                strict_weights=args.strict_weights,
            )
    except SweepInterrupted as stop:  # Ctrl-C: what was done and what is left, then 130
        for line in stop.summary.lines():
            say(line)
        return EXIT_INTERRUPTED
    for line in summary.lines():
        print(line)
    if args.images:
        from protoedit.sweep.examples import run_examples
        from protoedit.sweep.plan import expand

        for line in run_examples(
            expand(plan),
            store,
            args.images,
            k=args.k or 9,
            progress=False if args.quiet else None,
            allow_python_layers=args.allow_python_layers,
        ):
            print(line)
    return 1 if summary.failed else 0


def _say_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """A warning as one line on stderr (protoedit's own without Python's file and line)."""
    say(f"warning: {message}")


def _plan_file(args: argparse.Namespace) -> Any:
    """The plan file named, or a one-model plan from ``--net``, ``--weights``, ``--layers``."""
    from protoedit.errors import ProtoeditError
    from protoedit.sweep.plan import (
        Plan,
        PlanFile,
        Target,
        channel_list,
        layer_list,
        make_model,
        read_plan,
    )

    if args.plan:
        if args.net or args.weights or args.layers or args.channels:
            raise ProtoeditError("give a plan file or --net/--weights/--layers, not both")
        return read_plan(args.plan)
    flags = (("--net", args.net), ("--weights", args.weights), ("--layers", args.layers))
    missing = [flag for flag, value in flags if not value]
    if missing:
        raise ProtoeditError(f"give a plan file (--plan) or {', '.join(missing)}")
    model = make_model(args.net, args.weights, preprocess=preprocess(args))
    target = Target(model, layer_list(args.layers), channel_list(args.channels))
    return PlanFile(Plan((target,)))
