"""A warm Caffe session: the first ``gradients()`` call in a ``protoedit.caffe.session()``
starts the worker (the Caffe import), the second reuses it.

    python bench/bench_session.py [--repeat N]

Prints, in one run, the first call's time (worker start included), the second call's time,
the ratio, and a call that opens a worker of its own (what every call paid before sessions),
on the digits net trained by the test suite (cached after the first run).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import protoedit.caffe  # noqa: E402
from protoedit.explain import gradients  # noqa: E402
from protoedit.rewrites import LossHead  # noqa: E402
from tests.assets.digits import trained_digits  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="sessions to time (best of)")
    args = parser.parse_args()
    digits = trained_digits()
    x = np.load(digits.split)["images"][:1]
    options = {"weights": digits.weights, "inputs": x, "target": "ip2"}
    head = LossHead("logit", 3)
    firsts, seconds, alones = [], [], []
    for _ in range(args.repeat):
        with protoedit.caffe.session() as session:
            started = time.monotonic()
            gradients(digits.deploy, head=head, session=session, **options)  # type: ignore[arg-type]
            firsts.append(time.monotonic() - started)
            started = time.monotonic()
            gradients(digits.deploy, head=head, session=session, **options)  # type: ignore[arg-type]
            seconds.append(time.monotonic() - started)
            assert session.caffe_imports == 1
        started = time.monotonic()
        gradients(digits.deploy, head=head, **options)  # type: ignore[arg-type]
        alones.append(time.monotonic() - started)
    first, second, alone = min(firsts), min(seconds), min(alones)
    print(f"gradients() on the digits net, best of {args.repeat}:")
    print(f"  first call in a session (starts the worker, imports Caffe): {first:6.3f} s")
    print(f"  second call in the same session (warm worker):              {second:6.3f} s")
    print(f"  a call without a session (a worker of its own):             {alone:6.3f} s")
    print(f"  second/first: {second / first:5.3f}x; saved per call: {first - second:6.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
