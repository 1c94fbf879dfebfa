"""Speed of ``visualize`` on open_nsfw's ResNet-50 (1by2), as ratios measured in one run.

1. Per step: one ascent step of ``visualize`` (the mask head, the regularisers, the requests
   and the driver) against one forward + backward of the truncated net alone, in pycaffe
   itself, same batch and image size.  The visualize step is the marginal cost: the time of
   a run of ``--long`` steps minus one of ``--short`` steps, over the difference, in one open
   session, so the session start is not counted in it.  Each round times both sides back to
   back (the machine may be shared); the median ratio of the rounds is printed.
2. Batching: ``--units`` units optimised as one batch against the same units run one at a
   time, each a whole single-unit run (worker start, net and weights load, its steps).

    .venv/bin/python bench/bench_visualize.py [--target LAYER] [--units 16] [--steps 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from protoedit import load
from protoedit.explain import CaffeSession, Preprocess, Settings, visualize
from protoedit.explain.vis_net import visualization_net
from protoedit.rewrites import force_backward, truncate

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/assets of the checkout
from tests.assets.models import open_nsfw


def truncated_net(deploy: Path, weights: Path, target: str, batch: int) -> Any:
    """The net truncated at ``target`` with ``force_backward``, loaded in pycaffe here."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    import caffe

    doc = load(deploy)
    force_backward(doc)
    truncate(doc, target)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "truncated.prototxt"
        path.write_text(doc.dumps())
        caffe.set_mode_cpu()
        net = caffe.Net(str(path), str(weights), caffe.TEST)
    net.blobs["data"].reshape(batch, 3, 224, 224)
    net.reshape()
    net.blobs["data"].data[...] = np.random.default_rng(0).normal(0, 10, (batch, 3, 224, 224))
    return net


def forward_backward(net: Any) -> float:
    """The time of one forward and one backward (the top's gradient: a channel mean's)."""
    out = net.blobs[net.outputs[0]]
    started = time.perf_counter()
    net.forward()
    out.diff[...] = 1.0 / out.data[0, 0].size
    net.backward()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="relu_stage0_block2")
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10, help="steps of the batching runs")
    parser.add_argument("--short", type=int, default=3)
    parser.add_argument("--long", type=int, default=11)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = open_nsfw()
    pre = Preprocess(mean=model.mean)
    one_scale = Settings(octaves=1, tile=1)  # every step at 224 x 224, as the reference
    channels = list(range(args.units))

    print(f"open_nsfw ResNet-50 1by2, target {args.target}, {args.units} units, 224x224")
    net = truncated_net(model.deploy, model.weights, args.target, args.units)
    doc, _, _ = visualization_net(model.deploy, args.target)
    ratios = []
    extra = args.long - args.short
    with CaffeSession(doc.dumps(), weights=model.weights) as session:
        for _ in range(args.rounds):  # each round measures both sides back to back
            base = sum(forward_backward(net) for _ in range(extra)) / extra
            timings = {}
            for steps in (args.short, args.long):
                started = time.perf_counter()
                visualize(
                    model.deploy,
                    weights=None,
                    target=args.target,
                    objectives=channels,
                    settings=replace(one_scale, steps=steps),
                    preprocess=pre,
                    progress=False,
                    session=session,
                )
                timings[steps] = time.perf_counter() - started
            step = (timings[args.long] - timings[args.short]) / extra
            ratios.append(step / base)
            print(
                f"forward+backward of the truncated net alone (pycaffe): {base:.3f} s; "
                f"one visualize step, {args.units} units: {step:.3f} s; "
                f"ratio {step / base:.2f}"
            )
    del net
    print(
        f"ratio step / forward+backward, median of {args.rounds} rounds: "
        f"{float(np.median(ratios)):.2f} (goal <= 1.2)"
    )

    settings = replace(one_scale, steps=args.steps)
    started = time.perf_counter()
    visualize(
        model.deploy,
        weights=model.weights,
        target=args.target,
        objectives=channels,
        settings=settings,
        preprocess=pre,
        progress=False,
    )
    batched = time.perf_counter() - started
    started = time.perf_counter()
    for channel in channels:
        visualize(
            model.deploy,
            weights=model.weights,
            target=args.target,
            objectives=[channel],
            settings=settings,
            preprocess=pre,
            progress=False,
        )
    singles = time.perf_counter() - started
    print(
        f"{args.units} units, {args.steps} steps: one batch {batched:.1f} s, "
        f"{args.units} single-unit runs {singles:.1f} s"
    )
    print(f"ratio batch / singles: {batched / singles:.2f} (goal < 0.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
