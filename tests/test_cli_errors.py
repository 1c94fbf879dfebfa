"""The CLI's one error boundary: located one-line errors (2), internal errors (123), Ctrl-C
(130) and a closed pipe (141), never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from protoedit import InputError, cli

from .helpers import FIXTURES

LENET = str(FIXTURES / "lenet_deploy.prototxt")


def _env() -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    return dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))


def _run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["protoedit", *args], input=stdin, capture_output=True, text=True, env=_env(), check=False
    )


# (command line with {tmp} for a scratch folder, what stderr's last line says)
CRASH_ROWS = [
    (["force-backward", LENET, "-o", "{tmp}/missing/out.prototxt"], "cannot write: no folder"),
    (["upgrade", LENET, "-o", "{tmp}"], "cannot write: it is a directory"),
    (["check", LENET, "--type", "Bogus"], "the schema has no message 'Bogus' (--type)"),
    (["check", LENET, "--type", "LabelMap"], "the schema has no message 'LabelMap'"),
    (["check", "{tmp}/nothing.prototxt"], "nothing.prototxt: cannot read"),
    (["format", "-i", "-"], "-i/--in-place needs a file, not - (stdin)"),
    (["format", "-i"], "-i/--in-place needs a file, not - (stdin)"),
    (["truncate", "-i", "-", "--target", "conv1"], "-i/--in-place needs a file, not - (stdin)"),
    (["format", "-i", "--diff", LENET], "cannot be combined with --check or --diff"),
    (["format", "-i", "--check", LENET], "cannot be combined with --check or --diff"),
    (["format", LENET, LENET], "2 files would be printed one after another to stdout"),
]


@pytest.mark.parametrize(
    ("argv", "said"),
    [pytest.param(*row, id=" ".join(Path(arg).name for arg in row[0])) for row in CRASH_ROWS],
)
def test_bad_input_is_one_error_line_and_exit_2(tmp_path: Path, argv: list[str], said: str) -> None:
    done = _run(*(arg.replace("{tmp}", str(tmp_path)) for arg in argv), stdin="name: 'x'\n")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith(("protoedit: error: ", "protoedit format: error: ")), done.stderr
    assert said in last
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary file left


def test_an_internal_error_is_a_short_report_and_exit_123(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_: object, **__: object) -> int:
        raise RuntimeError("the unexpected happened")

    monkeypatch.setattr("protoedit.cli.format_check.check_files", broken)
    assert cli.main(["check", LENET]) == cli.EXIT_INTERNAL == 123
    err = capsys.readouterr().err
    assert err.startswith(
        "protoedit: internal error in `protoedit check`: RuntimeError: the unexpected happened\n"
    )
    assert f"raised at {__file__}:" in err and "in broken" in err
    assert "please report this" in err
    assert "Traceback" not in err and len(err.splitlines()) == 3


@pytest.mark.parametrize(
    ("exc", "code", "said"),
    [
        (InputError("bad things"), 2, "protoedit: error: bad things\n"),
        (FileExistsError(17, "File exists", "grads"), 2, "protoedit: error: grads: File exists\n"),
        (KeyboardInterrupt(), 130, "protoedit: error: interrupted\n"),
    ],
    ids=["ProtoeditError", "OSError", "KeyboardInterrupt"],
)
def test_expected_failures_are_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exc: BaseException,
    code: int,
    said: str,
) -> None:
    def failing(*_: object, **__: object) -> int:
        raise exc

    monkeypatch.setattr("protoedit.cli.format_check.format_files", failing)
    assert cli.main(["format", LENET]) == code
    assert capsys.readouterr().err == said


def _into_a_closed_pipe(argv: list[str], stderr_too: bool) -> subprocess.CompletedProcess[str]:
    """Run with stdout (and stderr) a pipe whose reader is already gone, as after `| head`."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            ["protoedit", *argv],
            stdout=write_end,
            stderr=write_end if stderr_too else subprocess.PIPE,
            text=True,
            env=_env(),
            check=False,
        )
    finally:
        os.close(write_end)


def test_a_closed_pipe_ends_the_command_quietly(tmp_path: Path) -> None:
    big = tmp_path / "big.prototxt"
    big.write_text("".join(f"layer {{ name: 'l{i}' type: 'ReLU' }}\n" for i in range(3000)))
    done = _into_a_closed_pipe(["format", "--diff", str(big)], stderr_too=False)
    assert done.returncode == cli.EXIT_BROKEN_PIPE == 141
    assert done.stderr == ""


def test_a_closed_pipe_on_the_report_still_writes_the_output_file(tmp_path: Path) -> None:
    out = tmp_path / "net.prototxt"
    done = _into_a_closed_pipe(["force-backward", LENET, "-o", str(out)], stderr_too=True)
    assert done.returncode == 141
    assert out.read_text() == _run("force-backward", LENET).stdout


def test_version_is_the_package_metadata() -> None:
    from importlib.metadata import version

    done = _run("--version")
    assert done.returncode == 0 and done.stdout == f"protoedit {version('protoedit')}\n"
