"""The atlas of ``sweep report`` with 2000 units on one layer: building it, and headless
Chromium loading the layer page and the units' page, against an empty page in the same run
(each page notes its own load time, ``data-load-ms``, so Chromium's start is left out).

    .venv/bin/python bench/bench_atlas.py [--units 2000]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from protoedit.sweep import write_report
from protoedit.sweep.atlas import layer_page
from protoedit.sweep.store import Store, UnitOutput

CHROMIUM = "/usr/bin/chromium"


def _store(folder: Path, units: int) -> None:
    rng = np.random.default_rng(0)
    outputs = []
    for channel in range(units):
        picture = rng.integers(0, 255, (8, 8, 1), dtype=np.uint8)
        array = picture.transpose(2, 0, 1).astype(np.float32)
        outputs.append(UnitOutput(channel, array, picture, 0.0, float(channel), 5, False))
    with Store(folder) as db:
        db.add_config("big", "bench", "conv", {"settings": {"steps": 5}, "batch": 8})
        db.add_results(
            "big", "conv", outputs, seconds=0.1, worker="w", sweep="s", versions=("0", "caffe")
        )


def _load_ms(page: Path, profile: Path) -> int:
    argv = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--dump-dom",
        page.as_uri(),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True).stdout
    return int(re.findall(r'data-load-ms="(\d+)"', out)[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=2000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-atlas-"))
    _store(work / "store", args.units)
    started = time.perf_counter()
    index = write_report(work / "store", work / "atlas")
    built = time.perf_counter() - started
    empty = work / "atlas" / "layers" / "empty.html"
    empty.write_text(
        "<script>addEventListener('load', () => document.body.dataset.loadMs ="
        " Math.round(performance.now()))</script><body></body>"
    )
    units = work / "atlas" / "units" / "launch.html"
    units.write_text(f'<script>location.replace("big.html#{args.units - 1}")</script>')
    profile = work / "profile"
    base = min(_load_ms(empty, profile) for _ in range(2))
    layer = min(_load_ms(index.parent / layer_page("big"), profile) for _ in range(2))
    one = min(_load_ms(units, profile) for _ in range(2))
    print(f"{args.units} units: report built in {built:.2f} s")
    print(
        f"layer page loads in {layer} ms, the units' page in {one} ms, an empty page in "
        f"{base} ms (ratios {layer / max(base, 1):.1f}x, {one / max(base, 1):.1f}x)"
    )


if __name__ == "__main__":
    main()
