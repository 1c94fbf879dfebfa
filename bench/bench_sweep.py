"""Throughput of ``protoedit sweep``: 1 local worker, 2 local workers, 2 Ray actors.

Each run sweeps the same units into a fresh store (pool start and net loads included: they
are part of a sweep); the Ray instance is started once beforehand, as a cluster would be, and
its start-up is printed separately.  The runs are repeated and interleaved, since the cores
may be shared: each line shows min / median / max units per minute, and the ratios use the
medians.

    .venv/bin/python bench/bench_sweep.py                      # digits net, 64 units
    .venv/bin/python bench/bench_sweep.py --model nsfw --steps 10 --layers conv_1 --units 64
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from protoedit.explain import Settings
from protoedit.explain.preprocess import Preprocess
from protoedit.sweep import Plan, Target, make_model, run_sweep

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/assets of the checkout


def plan_for(args: argparse.Namespace) -> Plan:
    """The digits net (conv2 and ip1, half the units each) or open_nsfw's ResNet-50."""
    if args.model == "digits":
        from tests.assets.digits import trained_digits

        digits = trained_digits()
        model = make_model(
            digits.deploy, digits.weights, name="digits", preprocess=Preprocess(scale=1 / 255)
        )
        layers = tuple(args.layers.split(",")) if args.layers else ("conv2", "ip1")
    else:
        from tests.assets.models import open_nsfw

        nsfw = open_nsfw()
        model = make_model(
            nsfw.deploy, nsfw.weights, name="open_nsfw", preprocess=Preprocess(mean=nsfw.mean)
        )
        layers = tuple(args.layers.split(",")) if args.layers else ("conv_1",)
    per_layer = args.units // len(layers)
    settings = Settings(steps=args.steps)
    return Plan(
        (Target(model, layers, tuple(range(per_layer))),), settings=settings, batch=args.batch
    )


def one_run(plan: Plan, engine: str, workers: int) -> float:
    """Units per minute of one sweep into a fresh store (and, for the local engine, the CPU
    seconds its Caffe processes used: the machine's other load shows as wall time beyond)."""
    before = os.times()
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_sweep(
            plan, Path(tmp) / "store", engine=engine, workers=workers, progress=False
        )
    if summary.failed or summary.computed != summary.units:
        raise SystemExit(f"the sweep did not finish: {summary.lines()}")
    after = os.times()
    cpu = after.children_user - before.children_user + after.children_system
    cpu -= before.children_system
    if engine == "local":
        print(
            f"    {engine} x{workers}: {summary.seconds:.1f} s wall, Caffe processes "
            f"{cpu:.1f} s CPU",
            file=sys.stderr,
        )
    return summary.units_per_minute


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("digits", "nsfw"), default="digits")
    parser.add_argument("--layers", help="comma-separated (default: conv2,ip1 / conv_1)")
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument(
        "--steps", type=int, default=2000, help="digits steps are cheap: many, so work dominates"
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("GLOG_minloglevel", "2")
    plan = plan_for(args)
    runs: dict[str, list[float]] = {"local x1": [], "local x2": [], "ray x2": []}
    if args.no_ray:
        del runs["ray x2"]
    else:
        import ray

        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        print(f"ray.init (local instance, 2 CPUs): {time.perf_counter() - started:.1f} s")
    print(
        f"{args.model}: {args.units} units, {args.steps} steps, batch {args.batch}, "
        f"{os.cpu_count()} cores (shared), {args.repeat} rounds"
    )
    for _ in range(args.repeat):
        for name in runs:
            engine, workers = name.split(" x")
            runs[name].append(one_run(plan, engine, int(workers)))
            print(f"  {name}: {runs[name][-1]:.1f} units/min", file=sys.stderr)
    median = {name: statistics.median(values) for name, values in runs.items()}
    for name, values in runs.items():
        print(
            f"{name:9s} units/min  min {min(values):8.1f}  median {median[name]:8.1f}  "
            f"max {max(values):8.1f}"
        )
    print(f"2 local workers / 1: {median['local x2'] / median['local x1']:.2f}x")
    if "ray x2" in median:
        print(f"2 Ray actors / 2 local workers: {median['ray x2'] / median['local x2']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
