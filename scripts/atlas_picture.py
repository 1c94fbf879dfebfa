"""Draw docs/atlas-digits.png: the atlas of a sweep of the trained digits net (conv2, 8
units, with its top 6 of 300 digit images and their patches), as headless Chromium shows the
layer page.

Run with the project's venv: ``python scripts/atlas_picture.py [OUT.png]`` (needs Debian's
chromium).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from protoedit.explain import Preprocess
from protoedit.explain.settings import Settings
from protoedit.sweep import Plan, Target, make_model, run_sweep, write_report
from protoedit.sweep.atlas import layer_page
from protoedit.sweep.examples import run_examples
from protoedit.sweep.plan import expand

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test assets of the checkout: tests/assets
from tests.assets.digits import trained_digits  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


def main() -> int:
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "atlas-digits.png"
    work = Path(tempfile.mkdtemp(prefix="protoedit-atlas-"))
    images = work / "digits"
    images.mkdir()
    for n, pixels in enumerate(load_digits().images[:300] * 16):
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(images / f"d{n:03d}.png")
    model = trained_digits()
    digits = make_model(
        model.deploy, model.weights, name="digits", preprocess=Preprocess(scale=1 / 255)
    )
    plan = Plan((Target(digits, ("conv2",), tuple(range(8))),), settings=Settings(steps=100))
    store = work / "store"
    print(run_sweep(plan, store, progress=False, workers=2).lines()[0])
    for line in run_examples(expand(plan), store, images, k=6, progress=False):
        print(line)
    index = write_report(store, work / "atlas")
    (job,) = expand(plan)
    page = index.parent / layer_page(job.config)
    argv = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={work / 'profile'}",
        f"--screenshot={out}",
        "--window-size=1000,760",
        page.as_uri(),
    ]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
