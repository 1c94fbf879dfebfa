"""The README's examples run: console sessions (output lines and exit codes) and Python blocks."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"```(console|python)\n(.*?)```", re.DOTALL)


def _console_examples() -> list[tuple[str, list[str], int]]:
    """(command, expected output lines, expected exit code) for each `$ ` line."""
    examples = []
    for kind, body in BLOCK.findall(README):
        if kind != "console":
            continue
        for chunk in body.split("$ ")[1:]:
            command, *rest = chunk.rstrip("\n").split("\n")
            exits = [line for line in rest if line.startswith("# exit ")]
            expected = [line for line in rest if not line.startswith("# exit ")]
            code = int(exits[0].split()[-1]) if exits else 0
            examples.append((command, expected, code))
    return examples


def _python_blocks() -> list[str]:
    return [body for kind, body in BLOCK.findall(README) if kind == "python"]


def test_readme_starts_with_the_two_commands() -> None:
    first_block = README.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block


@pytest.mark.caffe
@pytest.mark.parametrize("example", _console_examples(), ids=lambda e: e[0])
def test_console_example(example: tuple[str, list[str], int]) -> None:
    command, expected, code = example
    argv = shlex.split(command)
    assert argv[0] == "protoedit"
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == code, proc.stdout + proc.stderr
    lines = (proc.stdout + proc.stderr).splitlines()
    position = 0
    for line in expected:  # every shown line appears, in order
        assert line in lines[position:], f"{line!r} not in output:\n{proc.stdout}{proc.stderr}"
        position = lines.index(line, position) + 1


@pytest.mark.caffe
@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_python_example(index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    exec(compile(_python_blocks()[index], f"README.md python block {index}", "exec"), {})
