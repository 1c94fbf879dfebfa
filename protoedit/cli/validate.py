"""``protoedit validate``: its options, the driver, and the report's hints in CLI terms."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from protoedit.cli.options import (
    Commands,
    add_python_layers,
    add_timeout,
    add_weights,
    index,
    parse_size,
    positive,
)
from protoedit.validate import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT, EXTENTS, SMALLEST

#: The remedy for each validation cause (``ValidationReport.cause``), phrased with this
#: command line's commands and flags; the library's own table names its API.
VALIDATE_HINTS = {
    "no_loss": "a deploy net has no loss: `protoedit aux NET --target LAYER` (or `add-loss`) "
    "gives it one whose value is a unit's activation",
    "no_force_backward": "`protoedit force-backward NET` sets 'force_backward: true'",
    "zero_weights": "pass --weights MODEL.caffemodel or --random-weights",
    "python_layers": "pass --allow-python-layers to run them",
    "over_budget": "raise it with --memory-limit (0 for none)",
    "data_layers": "the net reads its data from files ({detail}): `protoedit to-deploy NET -o "
    "deploy.prototxt` replaces its data layers with an Input layer",
    "solver_file": "validate the net it names: {detail}",
}


def _input_pair(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected BLOB=FILE.npy, got {text!r}")
    return name, path


def _batch(text: str) -> int | str:
    """``--batch``: a positive number or ``declared``."""
    if text.strip().lower() == "declared":
        return "declared"
    return positive(text)


def add_validate(commands: Commands) -> None:
    """``protoedit validate``."""
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
        "--jobs", "-j", type=positive, metavar="N", help="Caffe workers (default: the cores)"
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
    add_weights(cmd, required=False)
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
    cmd.add_argument("--seed", type=index, default=0, help="seed of the random inputs (default 0)")
    add_timeout(cmd, DEFAULT_TIMEOUT, f"kill Caffe after this long (default {DEFAULT_TIMEOUT:g})")
    cmd.add_argument(
        "--memory-limit",
        type=parse_size,
        default=DEFAULT_MEMORY_LIMIT,
        metavar="SIZE",
        help="address-space limit of the Caffe process, e.g. 8G; 0 for none (default 4G)",
    )
    add_python_layers(cmd)
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
    cmd.set_defaults(run=run_validate, usage_error=cmd.error)


def run_validate(args: argparse.Namespace) -> int:
    """Validate every net on warm workers; print each report as soon as those before it are
    printed (the order given), then the counts; exit with the worst report's code."""
    from protoedit.progress import progress_bar
    from protoedit.validate import iter_validate
    from protoedit.validate.hook import hook_nets
    from protoedit.validate.report import ValidationReport, write_junit

    if "-" in args.nets and len(args.nets) > 1:
        args.usage_error("- (stdin) must be the only NET")
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
        strict_weights=args.strict_weights,
    )
    reports: list[ValidationReport | None] = [None] * len(args.nets)
    many = len(reports) > 1
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
    with progress_bar(len(reports), unit="net", desc="validate", leave=False) as bar:
        bar.update(len(reports) - len(runnable))
        for position, report in iter_validate(
            [nets[i] for i in runnable], jobs=args.jobs, **options
        ):
            if args.hook:
                _hook_verdict(report)
            reports[runnable[position]] = report
            bar.set_postfix_str(report.net, refresh=False)
            bar.update(1)
            bar.clear()
            while shown < len(reports) and reports[shown] is not None:
                _print_report(reports[shown], args.json, many)
                shown += 1
            bar.refresh()
        bar.clear()
        for left in reports[shown:]:
            _print_report(left, args.json, many)
    done = [report for report in reports if report is not None]
    if args.junit_xml:
        write_junit(done, args.junit_xml, VALIDATE_HINTS)
    if many and not args.json:
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
        report.cause = report.cause_detail = ""
    elif report.cause == "python_layers":  # user code (often a data reader): only when asked
        report.status = "skipped"
        report.reason += " (add --allow-python-layers to the hook's args to run them)"
        report.cause = report.cause_detail = ""


def _print_report(report: Any, as_json: bool, many: bool) -> None:
    """One file's report: a JSON line, or the text report with its hint."""
    import json

    if as_json:
        print(json.dumps(report.to_dict(VALIDATE_HINTS), allow_nan=True), flush=True)
        return
    error = report.status == "error"
    print(report.format_text(verdict=many or not error))
    if error and not many:
        print(f"protoedit: error: {report.reason}", file=sys.stderr)
    hint = report.remedy(VALIDATE_HINTS)
    if hint:
        print(f"hint: {hint}", file=sys.stderr if error and not many else sys.stdout)
    if many:
        print(flush=True)
