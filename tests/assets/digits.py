"""A small digits classifier trained in Caffe itself, cached beside the Caffe build.

The net and solver are protoedit's own (``fixtures/digits``); the data is scikit-learn's
bundled 8x8 digits (1,797 images, no download; needs the ``dev`` extra).  Training runs in a
child process (``tests/assets/train_digits.py``), seeded, in a few seconds on a CPU, into a
temporary folder renamed into place when complete, so a crash or a concurrent run never leaves
a half-written cache.  The cache key is a hash of the prototxt files, the training script and
the Caffe build.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from protoedit.caffe.build import build_key, cache_root
from protoedit.errors import InputError, Location
from protoedit.explain.session import CaffeRunError

#: Bump when the training procedure changes in a way the hashed files do not show.
TRAINING_VERSION = 1
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "digits"
FILES = ("deploy.prototxt", "train.prototxt", "solver.prototxt")
_SCRIPT = Path(__file__).resolve().parent / "train_digits.py"


@dataclass(frozen=True)
class TrainedDigits:
    """The cached model: its folder, deploy net, weights and held-out accuracy."""

    folder: Path
    accuracy: float  # on the held-out split
    train_accuracy: float
    held_out: int  # images in the held-out split

    @property
    def deploy(self) -> Path:
        """The deploy net the weights were trained for (a copy of the fixture)."""
        return self.folder / "deploy.prototxt"

    @property
    def train_net(self) -> Path:
        """The training net (Input ``data`` and ``label``, SoftmaxWithLoss ``loss``)."""
        return self.folder / "train.prototxt"

    @property
    def weights(self) -> Path:
        """The trained ``.caffemodel``."""
        return self.folder / "weights.caffemodel"

    @property
    def split(self) -> Path:
        """``held_out.npz``: ``images`` (N x 1 x 8 x 8, as fed to ``data``) and ``labels``."""
        return self.folder / "held_out.npz"


def cache_key(fixtures: Path = FIXTURES) -> str:
    """A hash of the net and solver files, the training script, its version and Caffe's build.

    ``fixtures`` defaults to ``fixtures/digits`` of the source checkout this module is in.
    """
    digest = hashlib.sha256(f"v{TRAINING_VERSION} {build_key()}\n".encode())
    for name in FILES:
        try:
            text = (fixtures / name).read_bytes()
        except OSError as exc:
            raise InputError(
                f"cannot read the digits net: {exc.strerror or exc}", Location(str(fixtures / name))
            ) from None
        digest.update(name.encode() + b"\0" + text + b"\0")
    digest.update(_SCRIPT.read_bytes())
    return digest.hexdigest()[:16]


def _read(folder: Path) -> TrainedDigits:
    metrics = json.loads((folder / "metrics.json").read_text())
    return TrainedDigits(
        folder=folder,
        accuracy=float(metrics["accuracy"]),
        train_accuracy=float(metrics["train_accuracy"]),
        held_out=int(metrics["held_out"]),
    )


def trained_digits(fixtures: Path = FIXTURES, timeout: float = 600.0) -> TrainedDigits:
    """The trained digits model, training it first when the cache does not hold it."""
    models = cache_root() / "models"
    folder = models / f"digits-{cache_key(fixtures)}"
    if (folder / "metrics.json").is_file():
        return _read(folder)
    models.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".digits-", dir=models))
    try:
        for name in FILES:
            shutil.copyfile(fixtures / name, tmp / name)
        env = dict(os.environ)
        env.setdefault("GLOG_minloglevel", "2")
        proc = subprocess.run(
            [sys.executable, str(_SCRIPT), str(tmp)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
        if proc.returncode != 0 or not (tmp / "metrics.json").is_file():
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise CaffeRunError(f"training the digits net failed (exit {proc.returncode}):\n{tail}")
        try:
            tmp.rename(folder)
        except OSError:  # another process finished first: its result is as good as ours
            if not (folder / "metrics.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _read(folder)
