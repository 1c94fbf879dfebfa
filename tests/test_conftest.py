"""The test fixtures themselves: what is missing fails in CI instead of skipping silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import conftest


def test_missing_corpus_fails_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(conftest, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="shared corpus not found"):
        conftest.corpus_dir(tmp_path / "absent")


def test_missing_corpus_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(conftest, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception):
        conftest.corpus_dir(tmp_path / "absent")
    assert conftest.corpus_dir(tmp_path) == tmp_path
