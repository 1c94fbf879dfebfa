"""The README's examples run: console sessions (whole output, or cut with ``…`` lines, and
exit codes) and Python blocks."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ROOT

README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"```(console|python)\n(.*?)```", re.DOTALL)


Example = tuple[str, list[str], int]


def _console_sessions() -> list[list[Example]]:
    """Each console block as a session: (command, expected output lines, expected exit code)
    for each `$ ` line, in order (a later command may read what an earlier one wrote)."""
    sessions = []
    for kind, body in BLOCK.findall(README):
        if kind != "console":
            continue
        examples = []
        for chunk in body.split("$ ")[1:]:
            command, *rest = chunk.rstrip("\n").split("\n")
            exits = [line for line in rest if line.startswith("# exit ")]
            expected = [line for line in rest if not line.startswith("# exit ")]
            code = int(exits[0].split()[-1]) if exits else 0
            examples.append((command, expected, code))
        sessions.append(examples)
    return sessions


def _python_blocks() -> list[str]:
    return [body for kind, body in BLOCK.findall(README) if kind == "python"]


def test_readme_starts_with_the_two_commands() -> None:
    first_block = README.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block


@pytest.mark.caffe
@pytest.mark.parametrize("session", _console_sessions(), ids=lambda e: e[0][0])
def test_console_session(session: list[Example]) -> None:
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    for command, expected, code in session:
        argv = shlex.split(command)
        assert argv[0] == "protoedit"
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env, check=False)
        output = proc.stdout + proc.stderr
        assert proc.returncode == code, f"$ {command}\n{output}"
        assert shown_output_matches(expected, output.splitlines()), (
            f"$ {command}\nREADME shows:\n"
            + "\n".join(expected)
            + "\nthe command printed:\n"
            + output
        )


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
@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_python_example(index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    exec(compile(_python_blocks()[index], f"README.md python block {index}", "exec"), {})


def _layout() -> str:
    """The README's layout notes: from ``Layout:`` to the import-graph sentence."""
    start = README.index("Layout: `protoedit/` holds")
    return README[start : README.index("`net/` never imports", start)]


def test_the_layout_notes_name_every_module_and_only_those() -> None:
    package = ROOT / "protoedit"
    named = set(re.findall(r"`([a-z_0-9]+(?:\.py|/))`", _layout())) - {"protoedit/"}
    files = {p.name for p in package.rglob("*.py")} | {"grammars/"}
    folders = {f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").is_file()}
    assert named - files - folders == set()  # nothing named that is not there
    assert (files | folders) - named == {"__init__.py"}  # every module and package is named
