"""Diff speed on large synthetic nets: the time of ``diff_docs`` at N and 10 N layers.

Two nets of N layers (convolutions with in-place ReLUs): the second changes every 100th
layer's ``num_output``, drops every 1000th layer, adds as many and moves a few, so every kind
of change is found.  Loading is timed apart (it is the load benchmark's business); the
printed ratio of diff times should stay near 10 for a linear diff.

    .venv/bin/python bench/bench_diff.py [--layers N] [--rounds R]
"""

from __future__ import annotations

import argparse
import time

from protoedit import Document, loads
from protoedit.diff import diff_docs, summary


def net_text(layers: int, changed: bool) -> str:
    """A chain of ``layers`` layers; ``changed`` makes the second side of the pair."""
    parts = [
        'name: "big"\nlayer { name: "data" type: "Input" top: "x0"\n'
        "  input_param { shape { dim: 1 dim: 8 dim: 32 dim: 32 } } }\n"
    ]
    order = list(range(1, layers))
    if changed:  # move a few layers ten places down
        for start in range(500, layers - 20, max(layers // 5, 1)):
            order.insert(start + 10, order.pop(start))
    for i in order:
        if changed and i % 1000 == 0:
            continue  # dropped
        width = 16 if changed and i % 100 == 1 else 8
        if i % 2:
            parts.append(
                f'layer {{ name: "conv{i}" type: "Convolution" bottom: "x{i - 1}" top: "x{i}"\n'
                f"  convolution_param {{ num_output: {width} kernel_size: 3 pad: 1 }} }}\n"
            )
        else:
            parts.append(
                f'layer {{ name: "relu{i}" type: "ReLU" bottom: "x{i - 1}" top: "x{i}" }}\n'
            )
        if changed and i % 1000 == 1:
            parts.append(f'layer {{ name: "extra{i}" type: "ReLU" bottom: "x{i}" top: "x{i}" }}\n')
    return "".join(parts)


def timed_diff(layers: int, rounds: int) -> tuple[float, float, str]:
    """(load seconds, best diff seconds, summary) for a pair of ``layers``-layer nets."""
    started = time.perf_counter()
    old: Document = loads(net_text(layers, False), path="old")
    new: Document = loads(net_text(layers, True), path="new")
    loaded = time.perf_counter() - started
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        result = diff_docs(old, new)
        best = min(best, time.perf_counter() - started)
    return loaded, best, summary(result)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=10_000, help="N (default 10000)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times = []
    for layers in (args.layers, 10 * args.layers):
        loaded, diffed, what = timed_diff(layers, args.rounds)
        times.append(diffed)
        print(f"{layers:>8} layers: load {loaded:6.2f} s, diff {diffed:6.3f} s  ({what})")
    print(
        f"diff time ratio {10 * args.layers} / {args.layers} layers: {times[1] / times[0]:.1f}"
        " (10 is linear)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
