"""The docs site: built strictly by MkDocs, opened in headless Chromium (the landing page, a
command's generated page, the API page of ``Document``, search), a screenshot kept in
``build/docs-screenshot.png``; the command reference and the man page follow the parser."""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from protoedit.cli import build_parser
from protoedit.cli.reference import commands, man_page, markdown_page, walk

from .browser import CHROMIUM, Browser
from .helpers import ROOT

SCREENSHOT = ROOT / "build" / "docs-screenshot.png"


def _build(site: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        """No request log on stderr."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The site built into a temporary folder and served on a free local port."""
    folder = tmp_path_factory.mktemp("site")
    built = _build(folder)
    assert built.returncode == 0, built.stdout + built.stderr
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: make setup installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (make setup installs it)")
    with Browser() as b:
        yield b


def test_the_landing_page_shows_the_picture_and_the_way_in(site: str, browser: Browser) -> None:
    browser.open(site + "/")
    assert browser.evaluate("document.querySelector('h1').textContent").startswith("protoedit")
    assert browser.wait_for(  # the picture is loaded, not a broken image
        "[...document.images].filter(i => i.src.endsWith('aux-googlenet.png'))"
        ".every(i => i.complete && i.naturalWidth > 100)"
    )
    nav = browser.evaluate(
        "[...document.querySelectorAll('.md-nav__link')].map(a => a.textContent.trim())"
    )
    for entry in ("Tutorial", "Commands", "API", "Benchmarks"):
        assert entry in nav


def test_the_tutorial_shows_its_pictures(site: str, browser: Browser) -> None:
    browser.open(site + "/tutorial.html")
    images = "[...document.querySelectorAll('article img')]"
    assert browser.wait_for(  # every picture of the page loaded, none broken
        f"{images}.length > 0 && {images}.every(i => i.complete && i.naturalWidth > 100)"
    )
    shown = browser.evaluate(f"{images}.map(i => i.src.split('/').pop())")
    assert sorted(shown) == ["gradcam.png", "gradient.png", "unit.png"]


def test_a_command_page_is_its_help(site: str, browser: Browser) -> None:
    browser.open(site + "/reference/commands/validate.html")
    assert browser.evaluate("document.querySelector('h1').textContent").startswith(
        "protoedit validate"
    )
    table = browser.evaluate("document.querySelector('article').innerText")
    validate = next(c for c in commands(build_parser()) if c.name == "validate")
    for group in validate.groups:  # every option with its help, as --help has them
        for option in group.options:
            assert option.flags in table and option.help in table, option.flags
    assert "Details" in table and "smallest input extent" in table  # the hand-written notes


def test_the_api_page_of_document(site: str, browser: Browser) -> None:
    browser.open(site + "/reference/api/document.html")
    heading = "document.getElementById('protoedit.document.Document')"
    assert browser.evaluate(f"{heading} !== null && {heading}.textContent.includes('Document')")
    text = browser.evaluate("document.querySelector('article').innerText")
    for method in ("set", "get", "insert", "delete", "find", "save", "dumps"):
        assert f"protoedit.document.Document.{method}" in browser.evaluate(
            "[...document.querySelectorAll('[id]')].map(e => e.id).join(' ')"
        ), method
    assert "edit" in text.lower()


def test_search_finds_a_command(site: str, browser: Browser) -> None:
    browser.open(site + "/index.html?q=fold")
    assert browser.wait_for("document.querySelectorAll('.md-search-result__item').length") > 0
    first = browser.evaluate("document.querySelector('.md-search-result__item a').href")
    assert "/reference/commands/fold-bn.html" in first
    SCREENSHOT.parent.mkdir(exist_ok=True)
    browser.screenshot(SCREENSHOT)
    assert SCREENSHOT.read_bytes().startswith(b"\x89PNG")


def test_a_changed_help_string_changes_the_page_and_the_man_page() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    jobs = next(a for a in sub.choices["validate"]._actions if "--jobs" in a.option_strings)
    page = lambda: markdown_page(next(c for c in commands(parser) if c.name == "validate"))  # noqa: E731
    assert "Caffe workers (default: the cores)" in page()
    jobs.help = "how many workers validate at once"
    assert "how many workers validate at once" in page()
    assert "Caffe workers (default" not in page()
    assert "how many workers validate at once" in man_page(commands(parser), parser, "0")


def test_there_is_a_page_for_every_command_and_notes_only_for_commands() -> None:
    slugs = {c.slug for c in walk(commands(build_parser()))}
    assert {"format", "validate", "weights-show", "sweep-report"} <= slugs
    notes = {p.stem for p in (ROOT / "docs" / "reference" / "commands").glob("*.md")}
    assert notes <= slugs, notes - slugs


@pytest.mark.skipif(shutil.which("man") is None, reason="man is not installed")
def test_the_man_page_renders(tmp_path: Path) -> None:
    out = tmp_path / "protoedit.1"
    subprocess.run([sys.executable, "-m", "protoedit.cli.reference", "man", str(out)], check=True)
    shown = subprocess.run(
        ["man", "-l", str(out)],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, MANWIDTH="100", MAN_KEEP_FORMATTING="0"),
    ).stdout
    assert "PROTOEDIT(1)" in shown and "protoedit validate" in shown
    assert "--memory-limit SIZE" in shown
    groff = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-z", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert groff.stderr == ""  # no roff warnings


def test_a_broken_link_or_reference_fails_the_build(tmp_path: Path) -> None:
    # the site's own settings (strict, link validation, autorefs) on a one-page site
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    config.update(docs_dir=str(tmp_path / "docs"), site_dir=str(tmp_path / "site"))
    config["nav"] = ["index.md"]
    config.pop("hooks")
    config["plugins"][1]["mkdocstrings"]["handlers"]["python"]["paths"] = [str(ROOT)]
    (tmp_path / "docs").mkdir()
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))

    def build(text: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / "docs" / "index.md").write_text(f"# Page\n\n{text}\n")
        command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml"]
        env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=env)

    broken = build("[a](missing.md), [b](#nowhere), [c][protoedit.nothing_here]")
    assert broken.returncode != 0
    for named in ("missing.md", "#nowhere", "protoedit.nothing_here"):  # each one is reported
        assert named in broken.stdout + broken.stderr, (named, broken.stderr)
    fine = build("[fine](#page), [`load`][protoedit.document.load]\n\n::: protoedit.document.load")
    assert fine.returncode == 0, fine.stderr
