"""Child process: train the digits net in FOLDER with Caffe's SGD solver, then measure it.

    python tests/assets/train_digits.py FOLDER

FOLDER holds ``solver.prototxt``, ``train.prototxt`` and ``deploy.prototxt``.  The images are
scaled to [0, 1]; a seeded fifth of them is held out.  Each solver step gets the next batch of
a seeded shuffle through the Input blobs.  Writes ``weights.caffemodel``, ``held_out.npz`` and,
last, ``metrics.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

SEED = 1
HELD_OUT_FRACTION = 0.2


def main(folder: Path) -> int:
    """Train, save, evaluate on the held-out split."""
    import caffe
    import numpy as np
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    started = time.monotonic()
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # N x 1 x 8 x 8 in [0, 1]
    labels = digits.target.astype(np.float32)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(labels))
    cut = round(len(labels) * HELD_OUT_FRACTION)
    test, train = order[:cut], order[cut:]

    os.chdir(folder)
    caffe.set_mode_cpu()
    caffe.set_random_seed(SEED)
    param = text_format.Parse(Path("solver.prototxt").read_text(), caffe_pb2.SolverParameter())
    solver = caffe.get_solver("solver.prototxt")
    net = solver.net
    batch = net.blobs["data"].data.shape[0]
    queue: list[int] = []
    for _ in range(param.max_iter):
        if len(queue) < batch:
            queue.extend(rng.permutation(train).tolist())
        picked, queue = queue[:batch], queue[batch:]
        net.blobs["data"].data[...] = images[picked]
        net.blobs["label"].data[...] = labels[picked]
        solver.step(1)
    net.save("weights.caffemodel")

    deploy = caffe.Net("deploy.prototxt", caffe.TEST, weights="weights.caffemodel")

    def accuracy(indices: np.ndarray) -> float:
        deploy.blobs["data"].reshape(len(indices), 1, 8, 8)
        deploy.reshape()
        deploy.blobs["data"].data[...] = images[indices]
        deploy.forward()
        predicted = deploy.blobs["ip2"].data.argmax(axis=1)
        return float(np.mean(predicted == labels[indices]))

    np.savez("held_out.npz", images=images[test], labels=labels[test].astype(np.int64))
    metrics = {
        "accuracy": accuracy(test),
        "train_accuracy": accuracy(train),
        "held_out": len(test),
        "iterations": int(param.max_iter),
        "batch": int(batch),
        "seed": SEED,
        "seconds": round(time.monotonic() - started, 2),
    }
    Path("metrics.json.tmp").write_text(json.dumps(metrics, indent=1))
    os.replace("metrics.json.tmp", "metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
