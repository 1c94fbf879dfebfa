"""The test fixtures themselves: what is missing fails in CI instead of skipping silently, and
a test that needs Caffe cannot go without the ``caffe`` marker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from . import helpers
from .caffe_tripwire import MESSAGE, CaffeTripwire

pytest_plugins = ["pytester"]


def test_missing_corpus_fails_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(helpers, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="shared corpus not found"):
        helpers.corpus_dir(tmp_path / "absent")


def test_missing_corpus_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(helpers, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception):
        helpers.corpus_dir(tmp_path / "absent")
    assert helpers.corpus_dir(tmp_path) == tmp_path


def test_tripwire_refuses_caffe_here_and_in_children(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tripwire = CaffeTripwire(tmp_path)
    with tripwire.armed(monkeypatch):
        child = subprocess.run(
            [sys.executable, "-c", "import caffe"], capture_output=True, text=True, check=False
        )
        assert child.returncode != 0 and f"ImportError: {MESSAGE}" in child.stderr
        assert tripwire.tripped().startswith("process ")
        with pytest.raises(ImportError, match="not marked `caffe`"):
            import caffe.proto  # noqa: F401
    assert "this process (import caffe" in tripwire.tripped()
    assert "protoedit" not in tripwire.tripped()


def test_an_unmarked_test_runs_under_the_tripwire() -> None:
    first = os.environ["PYTHONPATH"].split(os.pathsep)[0]
    assert "Not pycaffe" in (Path(first) / "caffe" / "__init__.py").read_text()


_CONFTEST = "from tests.conftest import *  # noqa: F403\n"
_INI = "[pytest]\nmarkers =\n    caffe: needs pycaffe\n"


def test_the_caffe_marker_is_enforced(pytester: pytest.Pytester) -> None:
    """A test that starts Caffe (in a child or here), uses a Caffe fixture or lives in a
    ``*_caffe.py`` file without the marker fails, saying why."""
    pytester.makeconftest(_CONFTEST)
    pytester.makeini(_INI)
    body = """
import subprocess, sys, pytest

def test_starts_caffe():
    subprocess.run([sys.executable, "-c", "import caffe"], check=False)

def test_uses_a_caffe_fixture(digits_model):
    pass

def test_imports_caffe_here():
    try:
        import caffe  # noqa: F401
    except ImportError:
        pass

def test_no_caffe():
    pass
"""
    pytester.makepyfile(test_guarded=body, test_named_caffe="def test_unmarked():\n    pass\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rfE")
    # the two that start Caffe pass their body and fail in teardown
    result.assert_outcomes(passed=3, errors=4)
    out = result.stdout.str()
    for test in (
        "test_guarded.py::test_starts_caffe",
        "test_guarded.py::test_uses_a_caffe_fixture",
        "test_guarded.py::test_imports_caffe_here",
        "test_named_caffe.py::test_unmarked",
    ):
        assert f"ERROR {test} - Failed: " in out
    assert "started Caffe but is not marked `caffe`: process " in out
    assert "started Caffe but is not marked `caffe`: this process (import caffe)" in out
    assert "uses digits_model but is not marked `caffe`" in out
    assert "a test in a *_caffe.py file is not marked `caffe`" in out


def test_report_lines_end_the_run_under_their_title(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(_CONFTEST)
    pytester.makepyfile(
        test_reports="""
from tests.helpers import report_lines

def test_one():
    report_lines("proof", ["net a: 3 tried"])

def test_two():
    report_lines("proof", ["net b: 2 tried", "    refused x"])
    report_lines("another", ["seen"])
"""
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    out = result.stdout.lines
    start = next(i for i, line in enumerate(out) if " proof " in line and line.startswith("="))
    assert out[start + 1 : start + 4] == ["net a: 3 tried", "net b: 2 tried", "    refused x"]
    assert any(" another " in line for line in out[:start]) and "seen" in out


def test_the_fast_loop_scales_hypothesis_budgets(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(_CONFTEST)
    pytester.makepyfile(
        test_budget="""
from pathlib import Path
from hypothesis import given, settings, strategies as st

@settings(max_examples=80, database=None)
@given(st.integers())
def test_counts(n):
    with Path("calls").open("a") as calls:
        calls.write("x")
"""
    )
    counts = []
    for scale in ("1", "0.25"):
        monkeypatch.setenv("PROTOEDIT_HYPOTHESIS_SCALE", scale)
        pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
        counts.append(len((pytester.path / "calls").read_text()))
        (pytester.path / "calls").unlink()
    assert counts[0] >= 80 and 20 <= counts[1] < 30
