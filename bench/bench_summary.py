"""``protoedit summary`` at scale: the summary of a synthetic net against its load, in one run.

The net is ``bench_diff.net_text``'s chain of convolutions and ReLUs (N layers, default
100 000); the load is ``loads(text)`` (tree and typed message), the summary
``summary(doc)`` of the loaded document (shapes, parameters, FLOPs, memory, receptive
fields: every row).  Goal: the summary costs at most 1.5x the load.  Best of ``--rounds``,
the two timed in turns (this machine's speed drifts).

    .venv/bin/python bench/bench_summary.py [--layers N] [--rounds R]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_diff import net_text

from protoedit import loads, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=100_000, help="N (default 100000)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    text = net_text(args.layers, False)
    load_best = summary_best = float("inf")
    rows = 0
    for _ in range(args.rounds):
        started = time.perf_counter()
        doc = loads(text)
        load_best = min(load_best, time.perf_counter() - started)
        started = time.perf_counter()
        result = summary(doc)
        summary_best = min(summary_best, time.perf_counter() - started)
        rows = len(result.rows)
        del doc, result
    print(f"synthetic net, {args.layers} layers ({len(text) // 1000} kB), {rows} rows")
    print(f"load {load_best:.2f}s, summary {summary_best:.2f}s: {summary_best / load_best:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
