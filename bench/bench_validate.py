"""Validation benchmarks on the shared corpus: aux nets against full nets (P3), and many files
on warm workers against one process per file.

    python bench/bench_validate.py [p3|many|all] [--corpus DIR] [--repeat N]

P3: for ResNet-50, VGG-16 and Inception-v3, the full net (``force_backward``, a class loss on
the logits, parameter gradients computed, the declared batch: what validation did before)
against the aux net of a target in the middle as ``protoedit validate`` and ``aux --validate``
run it by default (batch 1, the smallest extent, parameter gradients skipped), and with one
of those changes at a time.  Times
are the Caffe work of each request (worker start excluded: it is the same for both), best of
``--repeat``; the verdicts must agree.

many: every deploy net of the corpus (MANIFEST.tsv category ``deploy``) at the command's
defaults, one fresh child process per file one after the other, then ``--jobs 1`` (one warm
worker) and ``--jobs 2``; wall-clock times of each whole run.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protoedit import load  # noqa: E402
from protoedit.rewrites import LossHead, aux  # noqa: E402
from protoedit.validate import ValidationReport, validate_files, validate_net  # noqa: E402

#: (corpus file, logits layer, a target in the middle of the net)
P3_NETS = [
    (
        "KaimingHe__deep-residual-networks__prototxt__ResNet-50-deploy.prototxt",
        "fc1000",
        "res4a_branch2b",
    ),  # block 8 of 16
    ("ethereon__netscope__presets__vgg-16.prototxt", "fc8", "conv3_3"),  # conv 7 of 13
    (
        "soeaver__caffe-model__cls__inception__deploy_inception-v3.prototxt",
        "classifier",
        "inception_b1_7x1_2",
    ),  # the first 17x17 module
]


def _aux_file(net: Path, target: str, head: LossHead, folder: Path) -> Path:
    doc = load(net)
    aux(doc, target, head)
    path = folder / f"{net.stem}.{target}.prototxt"
    path.write_text(doc.dumps())
    return path


def _best(path: Path, repeat: int, **options: object) -> ValidationReport:
    """The report of the fastest of ``repeat`` runs (its ``seconds`` the Caffe work)."""
    runs = [
        validate_net(path, random_weights=True, memory_limit=0, **options) for _ in range(repeat)
    ]  # type: ignore[arg-type]
    return min(runs, key=lambda r: r.seconds)


def bench_p3(corpus: Path, repeat: int) -> None:
    print("P3: full net (force_backward, class loss, parameter gradients, declared batch and")
    print("    extent: what validation did before) against the aux net of a mid-network target")
    with tempfile.TemporaryDirectory() as tmp:
        for name, logits, target in P3_NETS:
            net = corpus / name
            full_path = _aux_file(net, logits, LossHead(kind="logit", channel=1), Path(tmp))
            mid_path = _aux_file(net, target, LossHead(channel=0), Path(tmp))
            full = _best(full_path, repeat, skip_param_gradients=False)
            rows = [
                ("  declared batch and extent", _best(mid_path, repeat)),
                ("  with parameter gradients", _best(mid_path, repeat, skip_param_gradients=False)),
                ("  at batch 1", _best(mid_path, repeat, batch=1)),
                ("  at the smallest extent", _best(mid_path, repeat, extent="smallest")),
            ]
            # What `protoedit validate` and `aux --validate` run by default.
            default = _best(mid_path, repeat, batch=1, extent="smallest")
            same = all(r.status == "valid" for r in [full, default, *(r for _, r in rows)])
            verdict = "agree (valid)" if same else "DIFFER"
            extent = "x".join(map(str, next(iter(default.extent.values()), [])))
            print(f"  {net.name}: declared batch {full.declared_batch}, verdicts {verdict}")
            print(f"    full net                      {full.seconds:7.3f} s")
            print(f"    aux {target} as validate runs it (batch 1, extent {extent}, no parameter")
            ratio = full.seconds / default.seconds
            print(
                f"      gradients)                  {default.seconds:7.3f} s  {ratio:5.1f}x faster"
            )
            for what, report in rows:
                ratio = full.seconds / report.seconds
                print(f"    {what:<30}{report.seconds:7.3f} s  {ratio:5.1f}x faster")


def _deploy_nets(corpus: Path) -> list[Path]:
    with open(corpus / "MANIFEST.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [corpus / row["filename"] for row in rows if row["category"] == "deploy"]


def bench_many(corpus: Path, repeat: int) -> None:
    nets = _deploy_nets(corpus)
    print(f"many: {len(nets)} deploy nets at batch 1 and the smallest extent")
    for attempt in range(repeat):
        started = time.monotonic()
        one_by_one = [validate_files([net], jobs=1, batch=1, extent="smallest")[0] for net in nets]
        fresh = time.monotonic() - started
        started = time.monotonic()
        warm = validate_files(nets, jobs=1, batch=1, extent="smallest")
        one = time.monotonic() - started
        started = time.monotonic()
        two_jobs = validate_files(nets, jobs=2, batch=1, extent="smallest")
        two = time.monotonic() - started
        verdicts = [[r.status for r in run] for run in (one_by_one, warm, two_jobs)]
        agree = verdicts[0] == verdicts[1] == verdicts[2]
        print(
            f"  run {attempt + 1}: a process per file {fresh:6.2f} s; --jobs 1 {one:6.2f} s;"
            f" --jobs 2 {two:6.2f} s: {fresh / two:4.2f}x against a process per file,"
            f" {one / two:4.2f}x against --jobs 1; verdicts {'agree' if agree else 'DIFFER'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="?", default="all", choices=["p3", "many", "all"])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.which in ("p3", "all"):
        bench_p3(args.corpus, args.repeat)
    if args.which in ("many", "all"):
        bench_many(args.corpus, args.repeat)


if __name__ == "__main__":
    main()
