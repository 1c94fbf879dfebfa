"""A stand-in for pycaffe that a test not marked ``caffe`` runs with: importing ``caffe`` fails
as on a machine without Caffe, and the attempt is written down so the test can be failed.

Child processes see it first on ``PYTHONPATH`` (before the ``.pth`` file that links the real
pycaffe); this process sees it first in ``sys.meta_path``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest

MESSAGE = "pycaffe is blocked: the test is not marked `caffe`"

#: The stand-in package: appends who imported it to ``../imported``, then fails.
_PACKAGE = f'''"""Not pycaffe: the test tripwire (tests/caffe_tripwire.py)."""
import os
import sys

with open(os.path.join(os.path.dirname(__file__), os.pardir, "imported"), "a") as _log:
    _log.write(f"process {{os.getpid()}} ({{' '.join(sys.argv)}})\\n")
raise ImportError({MESSAGE!r})
'''


class _Finder(importlib.abc.MetaPathFinder):
    """Refuses ``caffe`` and its submodules in this process, writing the attempt down."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] != "caffe":
            return None
        with self.log.open("a") as log:
            log.write(f"this process (import {fullname})\n")
        raise ImportError(MESSAGE)


class CaffeTripwire:
    """The stand-in package in ``folder`` and the log of the imports it refused."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "caffe").mkdir()
        (folder / "caffe" / "__init__.py").write_text(_PACKAGE)
        self.log = folder / "imported"

    @contextmanager
    def armed(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        """While inside: ``import caffe`` fails here and in every child started from here."""
        self.log.unlink(missing_ok=True)
        path = os.environ.get("PYTHONPATH")
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(self.folder), path])))
        finder = _Finder(self.log)
        sys.meta_path.insert(0, finder)
        try:
            yield
        finally:
            sys.meta_path.remove(finder)

    def tripped(self) -> str:
        """Who tried to import ``caffe`` since :meth:`armed` ("" when nobody did)."""
        return self.log.read_text().strip().replace("\n", "; ") if self.log.exists() else ""
