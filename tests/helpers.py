"""What several test files share that is not a fixture: paths, the absent-input rule, the
one-error-line check, and the report sections printed at the end of a run.

Test modules import from here, never from ``conftest`` (pytest's own module, which imports
from here too), and conftest imports no test module: a test registers its report lines with
:func:`report_section`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
CORPUS = ROOT.parent / "shared" / "corpus"
IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> None:
    """Caffe and corpus tests fail in CI and skip elsewhere when what they need is absent."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: these tests must run)", pytrace=False)
    pytest.skip(reason)


def corpus_dir(path: Path) -> Path:
    """``path`` if it is a folder; else fail under ``CI=true``, skip elsewhere."""
    if not path.is_dir():
        missing(f"shared corpus not found at {path}")
    return path


def one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI in this process; it must exit 2 with exactly one ``protoedit: error:`` line
    on stderr and no traceback. Returns that line."""
    from protoedit.cli import main

    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("protoedit: error: ")
    return lines[0]


#: Lines for the end-of-run report that the running test gave, as (title, lines).
_PENDING: list[tuple[str, list[str]]] = []
#: Where a report's lines travel: the test's ``user_properties`` (which pytest-xdist carries
#: from its workers), under this prefix and the section's title.
REPORT_PROPERTY = "report: "


def report_lines(title: str, lines: list[str]) -> None:
    """Print ``lines`` under ``title`` at the end of the run (conftest collects them)."""
    _PENDING.append((title, list(lines)))


def take_report_lines() -> list[tuple[str, list[str]]]:
    """The lines given since the last call, as (title, lines), in order."""
    taken = _PENDING[:]
    _PENDING.clear()
    return taken
