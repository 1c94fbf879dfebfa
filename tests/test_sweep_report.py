"""``protoedit sweep report``: the HTML contact sheet, opened from disk in headless Chromium
(Debian's ``chromium``): every image loads at its stored size, sorting works, a missing image
shows, and a screenshot shows the tiles."""

from __future__ import annotations

import html.parser
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from protoedit.cli import main
from protoedit.sweep import write_report
from protoedit.sweep.report import TILE
from protoedit.sweep.store import Store, UnitOutput

CHROMIUM = "/usr/bin/chromium"
MAGENTA = (255, 0, 255)


@pytest.fixture(scope="module")
def chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is not installed (CI=true: the browser test must run)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return CHROMIUM


def _browse(chromium: str, page: Path, profile: Path, *mode: str) -> str:
    argv = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *mode,
        page.as_uri(),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class _Dom(html.parser.HTMLParser):
    """The attributes of every <img> and <figure>, and <body>'s, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.figures: list[dict[str, str]] = []
        self.body: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "img":
            self.images.append(values)
        elif tag == "figure":
            self.figures.append(values)
        elif tag == "body":
            self.body = values


def _dom(text: str) -> _Dom:
    dom = _Dom()
    dom.feed(text)
    return dom


def _store(folder: Path) -> dict[str, tuple[int, int]]:
    """A store with two layers: 8x8 grey units and 20x12 magenta ones, activations shuffled.
    Each image's (width, height) by layer."""
    rng = np.random.default_rng(0)
    sizes = {"conv1": (8, 8), "conv2": (20, 12)}
    with Store(folder) as store:
        for layer, (width, height) in sizes.items():
            config = f"cfg-{layer}"
            store.add_config(config, "toy", layer, {"settings": {"steps": 5}, "batch": 2})
            outputs = []
            for channel in range(10):
                if layer == "conv1":
                    picture = np.full((height, width, 1), 20 * channel, np.uint8)
                else:
                    picture = np.tile(np.array(MAGENTA, np.uint8), (height, width, 1))
                outputs.append(
                    UnitOutput(
                        channel,
                        picture.transpose(2, 0, 1).astype(np.float32),
                        picture,
                        0.0,
                        float(rng.normal()),
                        5,
                        channel == 3,
                    )
                )
            store.add_results(
                config,
                layer,
                outputs,
                seconds=1.0,
                worker="w",
                sweep="s",
                versions=("0.1.0", "caffe-x"),
            )
    return sizes


def test_contact_sheet_loads_every_image_in_a_browser(chromium: str, tmp_path: Path) -> None:
    sizes = _store(tmp_path / "store")
    atlas = tmp_path / "atlas"
    assert main(["sweep", "report", str(tmp_path / "store"), "-o", str(atlas)]) == 0
    page = atlas / "index.html"
    dom = _dom(_browse(chromium, page, tmp_path / "profile", "--dump-dom"))
    assert dom.body.get("data-images") == "20/20"
    assert len(dom.images) == 20
    for img in dom.images:
        path = atlas / img["src"]
        with Image.open(path) as picture:
            stored = picture.size
        layer = "conv1" if "conv1" in img["alt"] else "conv2"
        assert stored == sizes[layer]
        assert img["data-natural"] == f"{stored[0]}x{stored[1]}"  # what the browser decoded
        assert img["data-shown"] == f"{TILE}x{TILE}"  # every tile the same size on screen
    # each unit links to its settings: a JSON file with the config's description
    unit = json.loads((atlas / "units" / "cfg-conv2_c3.json").read_text())
    assert unit["unit"]["channel"] == 3 and unit["settings"] == {"steps": 5}
    # sorted by activation (the address asks for it), per layer, highest first
    sorted_dom = _dom(_browse_hash(chromium, page, tmp_path))
    for layer in ("conv1", "conv2"):
        shown = [
            float(f["data-activation"])
            for f, img in zip(sorted_dom.figures, sorted_dom.images, strict=True)
            if layer in img["alt"]
        ]
        assert len(shown) == 10 and shown == sorted(shown, reverse=True)
    original = [float(f["data-activation"]) for f in dom.figures[:10]]
    assert original != sorted(original, reverse=True)  # the order did change
    # a missing image is counted and flagged
    next(iter((atlas / "images").glob("cfg-conv1_c5.png"))).unlink()
    broken = _dom(_browse(chromium, page, tmp_path / "profile", "--dump-dom"))
    assert broken.body.get("data-images") == "19/20"


def _browse_hash(chromium: str, page: Path, tmp_path: Path) -> str:
    """The page with ``#sort=activation``: a small launcher page redirects to it (Chromium
    drops the fragment of a file address given on its command line)."""
    launcher = page.with_name("sorted.html")
    launcher.write_text('<script>location.replace("index.html#sort=activation")</script>')
    return _browse(chromium, launcher, tmp_path / "profile", "--dump-dom")


def test_screenshot_shows_the_tiles(chromium: str, tmp_path: Path) -> None:
    _store(tmp_path / "store")
    page = write_report(tmp_path / "store", tmp_path / "atlas")
    shot = tmp_path / "shot.png"
    _browse(chromium, page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1000,900")
    with Image.open(shot) as image:
        assert image.size == (1000, 900)
        pixels = np.asarray(image.convert("RGB"))
    magenta = np.all(pixels == MAGENTA, axis=2)
    # the conv2 tiles are below the conv1 grid: at least one row of them is on screen, each
    # TILE wide (object-fit keeps 20x12 proportions: TILE x TILE*12/20 of magenta)
    _, cols = np.nonzero(magenta)
    assert magenta.sum() >= 5 * TILE * (TILE * 12 // 20)
    assert cols.max() - cols.min() + 1 >= 5 * TILE
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
