"""Load speed at scale, as ratios measured in one run against protobuf's ``text_format.Parse``.

- load (lossless tree + typed message, ``loads(text, lenient=True)``) against
  ``text_format.Parse(text, NetParameter(), allow_unknown_field=True)`` of the same text, on
  every corpus file of 50 kB or more and on synthetic nets of N and 10 N layers
  (targets: at most 0.8x, stretch 0.5x);
- the load time from N to 10 N layers (target: at most 11x, i.e. linear);
- ``protoedit check`` and ``protoedit format --check`` of the 10 N net, in this process,
  against the load alone (target: each at most 1.5x);
- start-up, ``protoedit --version`` in a fresh process (target: at most 0.2 s).

Best of ``--rounds`` runs for each time (the 10 N net: of ``--large-rounds``); the times behind
one ratio are taken in turns, as this machine's speed drifts.

    .venv/bin/python bench/bench_scale.py [--layers N] [--rounds R] [--large-rounds R]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from google.protobuf import text_format

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_diff import net_text

from protoedit import builtin_schema, loads
from protoedit.cli.format_check import check_files, format_files

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
BIG = 50_000  # bytes: the corpus files the load target applies to


def best_of(rounds: int, work: Callable[[], object]) -> float:
    """The fastest of ``rounds`` timed runs, in seconds."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
        del result  # freeing what was loaded is not part of loading it
    return best


def load_ratio(text: str, rounds: int) -> tuple[float, float]:
    """(text_format seconds, protoedit seconds) for one text, rounds interleaved."""
    cls = builtin_schema().message_class("caffe.NetParameter")
    theirs = ours = float("inf")

    def reference() -> None:
        text_format.Parse(text, cls(), allow_unknown_field=True)

    for _ in range(rounds):  # interleaved: a busy machine slows both sides alike
        theirs = min(theirs, best_of(1, reference))
        ours = min(ours, best_of(1, lambda: loads(text, lenient=True)))
    return theirs, ours


def row(label: str, theirs: float, ours: float) -> None:
    print(f"{label:58}{theirs:>9.3f}s{ours:>9.3f}s{ours / theirs:>7.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--layers", type=int, default=10_000, help="N (default 10000)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--large-rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"{'load':58}{'text_format':>10}{'protoedit':>10}{'ratio':>8}")
    for path in sorted(args.corpus.glob("*.prototxt")):
        if path.stat().st_size < BIG:
            continue
        text = path.read_bytes().decode("utf-8")
        row(f"{path.name[:50]} ({len(text) // 1000} kB)", *load_ratio(text, args.rounds))
    sizes = (args.layers, 10 * args.layers)
    texts = [net_text(layers, False) for layers in sizes]
    for layers, text, rounds in zip(sizes, texts, (args.rounds, args.large_rounds), strict=True):
        row(f"synthetic, {layers} layers ({len(text) // 1000} kB)", *load_ratio(text, rounds))
    small, large = texts
    # This machine's speed drifts by tens of percent within a minute, so the times behind
    # each ratio are taken in turns: every round loads the small net, the large one, checks
    # and formats the large one, and loads the small one again.
    best = dict.fromkeys(("small", "large", "check", "format"), float("inf"))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "large.prototxt"
        path.write_text(large)
        work: dict[str, Callable[[], object]] = {
            "small": lambda: loads(small, lenient=True),
            "large": lambda: loads(large, lenient=True),
            "check": lambda: check_files([str(path)], strict=False),
            "format": lambda: format_files(
                [str(path)], check=True, diff=False, in_place=False, stdin_name=None
            ),
        }
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            for _ in range(args.large_rounds):
                for name in ("small", "large", "check", "format", "small"):
                    best[name] = min(best[name], best_of(1, work[name]))
    load = best["large"]
    print(f"load time, {sizes[1]} / {sizes[0]} layers: {load / best['small']:.1f}x")
    for label, name in (
        (f"check of the {sizes[1]}-layer net", "check"),
        ("format --check of it", "format"),
    ):
        print(f"{label}: {best[name]:.2f}s = {best[name] / load:.2f}x its load")
    command = [str(Path(sys.executable).parent / "protoedit"), "--version"]
    startup = best_of(5, lambda: subprocess.run(command, check=True, capture_output=True))
    print(f"start-up, protoedit --version: {startup:.3f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
