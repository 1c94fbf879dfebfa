"""The atlas of ``sweep report``: the net's drawing links the swept layers to their pages,
each layer page shows every unit with its optimised image, its top images and patches and
its statistics, each unit has a settings page; opened from disk in headless Chromium.  Dataset
examples come from ``sweep --images`` (resumable in the store)."""

from __future__ import annotations

import html.parser
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from protoedit.caffe import Session
from protoedit.explain.preprocess import Preprocess
from protoedit.explain.settings import Settings
from protoedit.explain.top_images import TopImagesFinder
from protoedit.sweep import Plan, Target, make_model, write_report
from protoedit.sweep.atlas import keep_net, layer_page
from protoedit.sweep.examples import EXAMPLES, STATE, images_key, run_examples
from protoedit.sweep.plan import expand
from protoedit.sweep.store import Store, UnitOutput

from . import test_sweep_report as sweep_report_tests
from .assets.digits import TrainedDigits
from .test_sweep_report import _browse

#: The contact sheet's fixture (Debian's chromium; in CI the browser tests must run),
#: shared (pytest finds a fixture by the name it is bound to here).
chromium = sweep_report_tests.chromium


class _Links(html.parser.HTMLParser):
    """Every element's tag and attributes, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def having(self, tag: str, **wanted: str) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.elements
            if t == tag and all(wanted[k] in a.get(k, "").split() for k in wanted)
        ]


def _parse(text: str) -> _Links:
    parsed = _Links()
    parsed.feed(text)
    return parsed


def _outputs(channels: range, size: int = 8) -> list[UnitOutput]:
    rng = np.random.default_rng(0)
    out = []
    for channel in channels:
        picture = rng.integers(0, 255, (size, size, 1), dtype=np.uint8)
        array = picture.transpose(2, 0, 1).astype(np.float32)
        out.append(UnitOutput(channel, array, picture, 0.0, float(channel), 5, False))
    return out


def _add(store: Path, config: str, layer: str, description: dict[str, Any], n: int) -> None:
    with Store(store) as db:
        db.add_config(config, "digits", layer, description)
        db.add_results(
            config,
            layer,
            _outputs(range(n)),
            seconds=0.1,
            worker="w",
            sweep="s",
            versions=("0.1.0", "caffe-x"),
        )


@pytest.mark.caffe
def test_atlas_of_the_digits_net(
    chromium: str, digits_model: TrainedDigits, caffe_session: Session, tmp_path: Path
) -> None:
    folder = tmp_path / "digits"
    files = _digit_pngs(folder, 40)
    model = make_model(
        digits_model.deploy,
        digits_model.weights,
        name="digits",
        preprocess=Preprocess(scale=1 / 255),
    )
    plan = Plan((Target(model, ("conv2",), tuple(range(8))),), settings=Settings(steps=5))
    (job,) = expand(plan)
    store = tmp_path / "store"
    _add(store, job.config, "conv2", job.description, 8)
    keep_net(store, job.model.net, job.description["net_sha256"])
    # a sweep killed after 16 images left its state: the next run resumes there
    partial = store / EXAMPLES / f"{job.config}-{images_key(files, 4)}"
    partial.mkdir(parents=True)
    states: list[dict[str, Any]] = []
    with TopImagesFinder(
        model.net,
        weights=model.weights,
        target="conv2",
        preprocess=model.preprocess,
        session=caffe_session,
    ) as finder:
        whole = finder.find(files, k=4, batch=8, on_batch=states.append)
    np.savez(partial / STATE, **states[1])
    lines = run_examples([job], store, folder, k=4, batch=8, session=caffe_session)
    assert lines == ["examples of digits conv2: 40 images ranked, resumed at image 16"]
    ranked = json.loads((partial / "top-images.json").read_text())
    assert [u["top"][0]["image"] for u in ranked["units"]] == [
        str(files[i]) for i in whole.indices[:, 0]
    ]
    again = run_examples([job], store, folder, k=4, session=caffe_session)
    assert again == ["examples of digits conv2: already ranked"]

    atlas = tmp_path / "atlas"
    started = time.perf_counter()
    index = write_report(store, atlas)
    seconds = time.perf_counter() - started
    dom = _parse(_browse(chromium, index, tmp_path / "profile", "--dump-dom"))
    (link,) = dom.having("a", **{"class": "swept"})
    assert link["href"] == layer_page(job.config)
    body = dom.having("body")[0]
    assert body["data-images"] == "8/8"
    page = atlas / link["href"]
    layer = _parse(_browse(chromium, page, tmp_path / "profile", "--dump-dom"))
    units = [a for t, a in layer.elements if t == "div" and "unit" in a.get("class", "").split()]
    assert [u["data-channel"] for u in units] == [str(c) for c in range(8)]
    images = layer.having("img")
    strips = [img["src"] for img in images if "strip" in img.get("class", "")]
    assert len(strips) == 8 and all((page.parent / src).is_file() for src in strips)
    assert all("patches" in src for src in strips)  # conv2 is spatial: patches shown
    for img in images:  # the first rows' images load with the page
        assert (page.parent / img["src"]).is_file()
    # the units' page shows the unit its address names (a launcher keeps the fragment,
    # which Chromium drops from a file address on its command line)
    launcher = atlas / "units" / "launch.html"
    launcher.write_text(f'<script>location.replace("{job.config}.html#3")</script>')
    unit = _parse(_browse(chromium, launcher, tmp_path / "profile", "--dump-dom"))
    assert unit.having("body")[0]["data-unit"] == "3"
    shown = {img["alt"]: img["src"] for img in unit.having("img")}
    assert set(shown) == {"optimised image", "top patches", "top images"}
    assert shown["optimised image"] == f"../images/{job.config}_c3.png"
    assert all((launcher.parent / src).is_file() for src in shown.values())
    cells = [a for t, a in unit.elements if t == "code"]
    assert len(cells) == len(job.description) + 1  # every setting, and the unit's record
    shot = tmp_path / "layer.png"
    _browse(chromium, page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1000,700")
    with Image.open(shot) as picture:
        pixels_shown = np.asarray(picture.convert("L"))
    assert pixels_shown.std() > 30  # pictures, not a blank page
    assert seconds < 60


@pytest.mark.slow  # writing the store of 2000 units (fsync per image) takes most of it
def test_atlas_of_2000_units_on_one_layer(chromium: str, tmp_path: Path) -> None:
    store = tmp_path / "store"
    _add(store, "cfg-big", "conv", {"settings": {"steps": 5}, "batch": 8}, 2000)
    started = time.perf_counter()
    index = write_report(store, tmp_path / "atlas")
    built = time.perf_counter() - started
    page = tmp_path / "atlas" / layer_page("cfg-big")
    started = time.perf_counter()
    layer = _parse(_browse(chromium, page, tmp_path / "profile", "--dump-dom"))
    opened = time.perf_counter() - started
    units = [a for t, a in layer.elements if t == "div" and "unit" in a.get("class", "").split()]
    assert len(units) == 2000
    # images load as they come near the window: the first rows have theirs, the last not
    images = layer.having("img")
    assert len(images) == 2000 and "src" in images[0] and "data-src" not in images[0]
    assert "src" not in images[-1] and (page.parent / images[-1]["data-src"]).is_file()
    loaded = layer.having("body")[0]["data-load-ms"]
    assert len(list((tmp_path / "atlas" / "units").glob("*.html"))) == 1  # one units' page
    assert index.is_file()
    print(
        f"2000 units: report built in {built:.2f} s, layer page loaded in {loaded} ms "
        f"({opened:.2f} s with Chromium's start)"
    )


def test_sweep_refuses_k_without_images(capsys: pytest.CaptureFixture[str]) -> None:
    from protoedit.cli import main

    assert main(["sweep", "--net", "n", "--weights", "w", "--layers", "a", "-k", "3"]) == 2
    assert "-k applies with --images only" in capsys.readouterr().err


def _digit_pngs(folder: Path, n: int) -> list[Path]:
    """The first ``n`` scikit-learn digits as 8-bit PNGs in ``folder`` (sorted names)."""
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    folder.mkdir()
    for index, image in enumerate(load_digits().images[:n] * 16):
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(folder / f"d{index:03d}.png")
    return sorted(folder.glob("*.png"))


@pytest.mark.caffe
def test_sweep_images_from_the_command_line_resumes_to_the_same_ranking(
    digits_model: TrainedDigits,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``sweep --images DIR``: interrupted after its first batch of images (64 of 70), run
    again it resumes there, and its ranking equals that of a run never interrupted; a third
    run does nothing; ``sweep report`` shows the examples."""
    from protoedit.cli import EXIT_INTERRUPTED, main
    from protoedit.sweep import examples

    files = _digit_pngs(tmp_path / "digits", 70)
    common = ["sweep", "--net", str(digits_model.deploy), "--weights", str(digits_model.weights)]
    common += ["--scale", repr(1 / 255), "--layers", "conv2", "--channels", "0-2"]
    common += ["--steps", "3", "--workers", "1", "--images", str(tmp_path / "digits")]
    common += ["-k", "4", "-q"]

    def ranked(store: Path) -> tuple[Path, dict[str, Any]]:
        (found,) = (store / EXAMPLES).glob("*/top-images.json")
        return found.parent, json.loads(found.read_text())

    saves: list[Path] = []
    write = examples._atomic_write

    def interrupted(path: Path, writer: Any) -> None:  # Ctrl-C once the first batch is saved
        write(path, writer)
        saves.append(path)
        raise KeyboardInterrupt

    monkeypatch.setattr(examples, "_atomic_write", interrupted)
    store = tmp_path / "store"
    assert main([*common, "--store", str(store)]) == EXIT_INTERRUPTED
    monkeypatch.undo()
    (state,) = saves
    assert state.name == STATE and not (state.parent / "top-images.json").exists()
    with np.load(state) as saved:
        assert int(saved["seen"]) == 64
    capsys.readouterr()

    assert main([*common, "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "examples of DigitsNet conv2: 70 images ranked, resumed at image 64" in out
    folder, resumed = ranked(store)
    assert folder == state.parent

    straight = tmp_path / "straight"
    assert main([*common, "--store", str(straight)]) == 0
    assert "70 images ranked\n" in capsys.readouterr().out
    assert ranked(straight)[1] == resumed  # the same images, values and patches
    top = [[entry["image"] for entry in unit["top"]] for unit in resumed["units"]]
    # every channel of the layer is ranked (one forward pass gives them all), 3 were swept
    assert len(top) == 32 and all(len(t) == 4 and set(t) <= set(map(str, files)) for t in top)

    assert main([*common, "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "3 units: 3 already stored, 0 computed now" in out
    assert "examples of DigitsNet conv2: already ranked" in out
    assert main(["sweep", "report", str(store), "-o", str(tmp_path / "atlas")]) == 0
    page = (tmp_path / "atlas" / layer_page(folder.name.rsplit("-", 1)[0])).read_text()
    # every channel is ranked but only the swept ones are on the page, and it says so
    assert (
        "3 swept units shown &middot; 32 units ranked on dataset images, top images of the 3 shown"
        in page
    )
    assert page.count('class="strip"') == 3  # the swept units show their top images
    # conv2 is spatial: the two numbers measure different things and say which
    assert page.count("optimised (mean over positions): ") == 3
    assert page.count("top image (strongest position): ") == 3


def test_layer_page_says_which_of_the_ranked_units_it_shows() -> None:
    """The page shows the swept units; when the ranking holds more, the text says so."""
    from types import SimpleNamespace

    from protoedit.sweep.atlas import _ranked

    rows: Any = [SimpleNamespace(channel=c) for c in (0, 2)]
    assert _ranked(rows, {}) == "no dataset images"
    assert _ranked(rows, {0: {}, 2: {}}) == "2 units ranked on dataset images"
    everything: dict[int, dict[str, Any]] = {c: {} for c in range(32)}
    want = "32 units ranked on dataset images, top images of the 2 shown"
    assert _ranked(rows, everything) == want


def test_unit_numbers_name_what_they_measure() -> None:
    """On a spatial layer the ascent's number is the channel's mean over positions and the
    ranking's the strongest position: each says so; on a vector (an InnerProduct) they are
    the same measure and carry no qualifier."""
    from types import SimpleNamespace

    from protoedit.sweep.atlas import _stats

    row: Any = SimpleNamespace(channel=4, dead_at_start=False, activation_start=0.1)
    row.activation_end = 1.5
    stats = {"mean": 2.0, "std": 0.5, "active": 1.0}
    spatial = _stats(row, {"top": [{"value": 3.5, "position": [2, 1]}], "stats": stats})
    assert "optimised (mean over positions): 0.1 &rarr; 1.5" in spatial
    assert "top image (strongest position): 3.5" in spatial
    assert "over the images (strongest position): mean 2, sd 0.5" in spatial
    vector = _stats(row, {"top": [{"value": 3.5, "position": []}], "stats": stats})
    assert "optimised: 0.1 &rarr; 1.5" in vector and "top image: 3.5" in vector
    assert "position" not in vector
