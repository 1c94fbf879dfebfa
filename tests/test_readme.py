"""The examples of the README and of the docs site (``docs/**/*.md``) run: console sessions
(whole output, or cut with ``…`` lines, and exit codes) and Python blocks, one test per block;
TOML and YAML blocks parse. The layout notes of ARCHITECTURE.md name every module."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from .assets.models import NSFW_LINK, CachedModel, link_model
from .docs_blocks import BLOCK, Example, blocks, console_examples
from .helpers import ROOT

README = (ROOT / "README.md").read_text()
#: Every Markdown file whose code blocks run: the README, then the docs site's sources.
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
#: What a block may be: run (console, python), parsed (toml, yaml), or ``sh``: the git
#: driver's set-up runs in a scratch repository below, the wheel's ``pip install`` is what
#: tests/test_wheel.py does; ``text`` is output shown, not a command.
KINDS = {"console", "python", "toml", "yaml", "sh", "text"}


#: A block that names this folder runs open_nsfw's ResNet-50 (the tutorial): it needs the
#: model (``nsfw_model``: a failure under CI=true when missing, as every open_nsfw test) and
#: is ``slow`` (each of its commands loads the ResNet-50 into a fresh Caffe, seconds each).
NSFW = NSFW_LINK.as_posix()


def _parameters(items: list[tuple[str, Any]]) -> list[Any]:
    """``(where, block)`` as pytest parameters, the blocks that run open_nsfw marked slow."""
    return [
        pytest.param(
            where, block, id=where, marks=[pytest.mark.slow] if NSFW in repr(block) else []
        )
        for where, block in items
    ]


def _needs_the_model(request: pytest.FixtureRequest, block: object) -> None:
    """A block that names ``models/open_nsfw``: the cached model, linked there (as `make fetch`
    does; the link is replaced atomically, so concurrent workers never see it missing)."""
    if NSFW in repr(block):
        link_model(request.getfixturevalue("nsfw_model"), ROOT / NSFW_LINK)


def _blocks(kind: str) -> list[tuple[str, str]]:
    """``(where, body)`` of each block of ``kind``: ``where`` is the file and the block's
    number among that file's blocks of the kind (``docs/tutorial.md#python-2``)."""
    found = []
    for page in PAGES:
        bodies = blocks(page.read_text(), kind)
        name = page.relative_to(ROOT).as_posix()
        found += [(f"{name}#{kind}-{i}", body) for i, body in enumerate(bodies)]
    return found


def test_every_block_is_of_a_kind_the_tests_know() -> None:
    kinds = {(page.name, k) for page in PAGES for k, _ in BLOCK.findall(page.read_text())}
    assert {k for _, k in kinds} <= KINDS, sorted(kinds)


def test_blocks_are_found_in_the_docs() -> None:
    # the docs hold the examples the README held; a broken pattern would find none
    assert len(_blocks("console")) >= 15 and len(_blocks("python")) >= 8
    assert any(where.startswith("docs/tutorial.md") for where, _ in _blocks("python"))


def test_the_git_driver_set_up_makes_git_diff_semantic(tmp_path: Path) -> None:
    (block,) = [body for _, body in _blocks("sh") if "diff.protoedit.command" in body]
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")

    def run(*argv: str) -> str:
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("git", "init", "-q")
    run("bash", "-euc", block)  # the block as the page shows it
    net = tmp_path / "net.prototxt"
    net.write_bytes((ROOT / "fixtures" / "lenet_deploy.prototxt").read_bytes())
    run("git", "add", "net.prototxt", ".gitattributes")
    run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "net")
    net.write_bytes((ROOT / "fixtures" / "diff" / "lenet_deploy_v2.prototxt").read_bytes())
    shown = run("git", "diff")
    assert "~ layer 'conv2' (Convolution)    a/net.prototxt:29:1 -> b/net.prototxt:12:1" in shown
    assert "1 removed, 2 added, 2 changed" in shown


def _console_sessions() -> list[tuple[str, list[Example]]]:
    """Each console block as a session: (command, expected output lines, expected exit code)
    for each `$ ` line, in order (a later command may read what an earlier one wrote)."""
    return [(where, console_examples(body)) for where, body in _blocks("console")]


def test_readme_starts_with_the_two_commands() -> None:
    first_block = README.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block


@pytest.mark.caffe
@pytest.mark.parametrize(("where", "session"), _parameters(_console_sessions()))
def test_console_session(
    where: str, session: list[Example], request: pytest.FixtureRequest
) -> None:
    _needs_the_model(request, session)
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    for command, expected, code in session:
        argv = shlex.split(command)
        assert argv[0] == "protoedit"
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env, check=False)
        output = proc.stdout + proc.stderr
        assert proc.returncode == code, f"{where}: $ {command}\n{output}"
        assert shown_output_matches(expected, output.splitlines()), (
            f"$ {command}\n{where} shows:\n"
            + "\n".join(expected)
            + "\nthe command printed:\n"
            + output
        )


def test_a_command_written_over_lines_runs_as_one() -> None:
    """Long commands in the docs continue with a backslash, as a shell reads them: each runs
    as one command with its options, and none is left with a dangling backslash."""
    commands = [c for _, session in _console_sessions() for c, _, _ in session]
    assert not [c for c in commands if c.endswith("\\")]
    grad = [c for c in commands if c.startswith("protoedit grad models/")]
    assert grad and all("--class 0" in c and "\\" not in c for c in grad)
    assert any(" \\\n    --" in body for _, body in _blocks("console"))


def test_each_console_session_keeps_its_files_to_itself() -> None:
    # Sessions run in any order, on any test worker: a file one writes under /tmp that
    # another reads would make the second pass or fail by chance.
    owners: dict[str, set[str]] = {}
    for where, session in _console_sessions():
        for command, _, _ in session:
            for path in re.findall(r"/tmp/[\w./-]+", command):
                owners.setdefault(path, set()).add(where)
    shared = {path: sorted(ws) for path, ws in owners.items() if len(ws) > 1}
    assert shared == {}


#: A README output line that stands for lines left out (any number, maybe none).
CUT = "…"


def shown_output_matches(shown: list[str], lines: list[str]) -> bool:
    """The output is exactly the shown lines, where a line ``…`` stands for a cut."""
    pattern = "".join("(?:.*\n)*?" if line == CUT else re.escape(line) + "\n" for line in shown)
    return re.fullmatch(pattern, "".join(line + "\n" for line in lines)) is not None


def test_shown_output_is_whole_unless_cut_with_an_ellipsis() -> None:
    printed = ["net: a", "blobs:", "  data 1", "done"]
    assert shown_output_matches(printed, printed)
    assert not shown_output_matches(["net: a", "done"], printed)  # a silent excerpt
    assert shown_output_matches(["net: a", CUT, "done"], printed)
    assert shown_output_matches([CUT, "  data 1", CUT], printed)
    assert shown_output_matches(["net: a", CUT, "blobs:", CUT, "done"], printed)  # cut of none
    assert not shown_output_matches(["blobs:", CUT], printed)
    assert not shown_output_matches(["net: a", CUT, "  data 2", CUT], printed)


@pytest.mark.caffe
@pytest.mark.parametrize(("where", "body"), _parameters(_blocks("python")))
def test_python_example(
    where: str, body: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    _needs_the_model(request, body)
    monkeypatch.chdir(ROOT)
    exec(compile(body, where, "exec"), {})


@pytest.mark.parametrize(
    ("where", "body"),
    _blocks("toml") + _blocks("yaml"),
    ids=[w for w, _ in _blocks("toml") + _blocks("yaml")],
)
def test_configuration_blocks_parse(where: str, body: str) -> None:
    parsed = tomllib.loads(body) if "#toml" in where else yaml.safe_load(body)
    assert parsed, where


def _layout() -> str:
    """ARCHITECTURE.md's layout notes: from ``Layout:`` to the import-graph sentence."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    start = text.index("Layout: `protoedit/` holds")
    return text[start : text.index("`net/` never imports", start)]


def test_the_layout_notes_name_every_module_and_only_those() -> None:
    package = ROOT / "protoedit"
    named = set(re.findall(r"`([a-z_0-9]+(?:\.py|/))`", _layout())) - {"protoedit/"}
    files = {p.name for p in package.rglob("*.py")} | {"grammars/"}
    folders = {f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").is_file()}
    assert named - files - folders == set()  # nothing named that is not there
    assert (files | folders) - named == {"__init__.py"}  # every module and package is named


#: A call written out in the docs' prose: `name(param, param=default, ...)`.
CALL = re.compile(r"`((?:protoedit\.)?[A-Za-z_][\w.]*)\(([^`()]*)\)`", re.DOTALL)
#: Where a bare name in the prose is looked up, in this order.
NAMESPACES = ("protoedit", "protoedit.explain", "protoedit.caffe", "protoedit.rewrites")


def _resolve(name: str) -> object | None:
    """The protoedit object a dotted name in the prose stands for, or None."""
    parts = name.split(".")
    if parts[0] == "protoedit":
        for i in range(len(parts), 0, -1):
            try:
                found: object = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            for attribute in parts[i:]:
                found = getattr(found, attribute, None)
            return found
        return None
    for space in NAMESPACES:
        found = getattr(importlib.import_module(space), parts[0], None)
        for attribute in parts[1:]:
            found = getattr(found, attribute, None)
        if found is not None:
            return found
    return None


def _unknown_parameters(name: str, arguments: str) -> list[str]:
    """The parameters a written-out call names that the real signature lacks."""
    found = _resolve(name)
    if found is None or not callable(found):
        return []
    try:
        parameters = inspect.signature(found).parameters
    except (TypeError, ValueError):
        return []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return []
    named = re.findall(r"(?:^|,)\s*\**([A-Za-z_]\w*)", arguments)
    return [n for n in named if n not in parameters]


def test_calls_written_out_in_the_docs_name_real_parameters() -> None:
    # the README's prose once showed signatures that had drifted from the code
    assert _unknown_parameters("protoedit.load", "path, schema=None, lenent=False") == ["lenent"]
    drifted = [
        (page.relative_to(ROOT).as_posix(), call.group(0), missing)
        for page in PAGES
        for call in CALL.finditer(page.read_text())
        if (missing := _unknown_parameters(call.group(1), call.group(2)))
    ]
    assert drifted == []


#: A picture a page embeds: ``![alt](path)``.
PICTURE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
#: The tutorial's pictures: what its commands write, shrunk by scripts/tutorial_pictures.py.
TUTORIAL = ROOT / "docs" / "tutorial.md"
TUTORIAL_PICTURES = ROOT / "docs" / "tutorial"
#: Kept small: they are committed, and every clone carries them.
MAX_PICTURE_BYTES = 150_000


def _embedded(page: Path) -> list[Path]:
    """The files of the pictures ``page`` embeds (paths are relative to the page)."""
    return [(page.parent / found).resolve() for found in PICTURE.findall(page.read_text())]


def test_every_picture_a_page_embeds_is_there() -> None:
    assert _embedded(TUTORIAL)  # a broken pattern would find none
    absent = [
        (page.relative_to(ROOT).as_posix(), path.name)
        for page in PAGES
        for path in _embedded(page)
        if not path.is_file()
    ]
    assert absent == []


def test_the_tutorial_pictures_are_small_and_what_its_commands_write() -> None:
    shown = _embedded(TUTORIAL)
    pictures = [path for path in shown if path.parent == TUTORIAL_PICTURES]
    assert len(pictures) >= 3  # the gradient, Grad-CAM and the visualised unit
    assert {path.stat().st_size <= MAX_PICTURE_BYTES for path in pictures} == {True}, [
        (path.name, path.stat().st_size) for path in pictures
    ]
    # each is the output of one of the page's commands (`-o /tmp/protoedit_tutorial_NAME`)
    commands = [
        command
        for where, session in _console_sessions()
        for command, _, _ in session
        if where.startswith("docs/tutorial.md")
    ]
    written = {m for c in commands for m in re.findall(r"-o /tmp/protoedit_tutorial_(\S+)", c)}
    assert {path.name for path in pictures} <= written, written


def test_the_tutorial_runs_a_model_zoo_net_to_its_pictures() -> None:
    # the tutorial: open_nsfw read, checked, its gradients, two saliency maps and a
    # visualised unit, each by a command of the page that the tests run
    commands = [
        command
        for where, session in _console_sessions()
        if where.startswith("docs/tutorial.md")
        for command, _, _ in session
    ]
    on_the_model = [shlex.split(c)[1] for c in commands if f"{NSFW}/deploy.prototxt" in c]
    assert on_the_model == ["summary", "check", "grad", "saliency", "saliency", "visualize"]
    assert any("--method gradcam" in c for c in commands)
    assert [where for where, body in _blocks("python") if NSFW in body] == [
        "docs/tutorial.md#python-0"
    ]
    slow = [p.id for p in _parameters(_console_sessions()) if p.marks]
    assert len(slow) == 6 and all(i.startswith("docs/tutorial.md") for i in slow), slow


def test_the_model_link_is_made_and_replaced_in_place(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    model = CachedModel(folder=first, deploy=first / "d", weights=first / "w", mean=(0.0,))
    link = tmp_path / "models" / "open_nsfw"
    assert link_model(model, link) == link and link.resolve() == first
    assert link_model(model, link) == link  # again: the same link, nothing else left behind
    moved = CachedModel(folder=second, deploy=second / "d", weights=second / "w", mean=(0.0,))
    link_model(moved, link)  # a stale link (another cache) is replaced
    assert link.resolve() == second
    assert sorted(p.name for p in link.parent.iterdir()) == ["open_nsfw"]
