"""The ``protoedit-validate`` hook through the real pre-commit framework (``try-repo``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import FIXTURES, ROOT

pytestmark = pytest.mark.caffe


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def _try_repo(repo: Path) -> subprocess.CompletedProcess[str]:
    """``pre-commit try-repo`` of this checkout's hooks on ``repo``'s files."""
    pre_commit = Path(sys.executable).with_name("pre-commit")
    # A `language: system` hook runs the `protoedit` of the user's environment: here, this
    # venv's, as for a user who activated it (CI runs the tests without it on PATH).
    path = os.pathsep.join([str(pre_commit.parent), os.environ.get("PATH", "")])
    return subprocess.run(
        [str(pre_commit), "try-repo", str(ROOT), "protoedit-validate", "--all-files", "--verbose"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, PATH=path),
    )


@pytest.fixture
def repo(tmp_path: Path, corpus: Path) -> Path:
    """A git repository holding a deploy net, two train/val nets and a solver file."""
    repo = tmp_path / "models"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "test@example.org")
    _git(repo, "config", "user.name", "test")
    shutil.copy(FIXTURES / "lenet_deploy.prototxt", repo / "deploy.prototxt")
    shutil.copy(
        corpus / "BVLC__caffe__examples__mnist__lenet_train_test.prototxt",
        repo / "lenet_train_test.prototxt",
    )
    shutil.copy(
        corpus / "BVLC__caffe__models__bvlc_googlenet__train_val.prototxt",
        repo / "googlenet_train_val.prototxt",
    )
    (repo / "solver.prototxt").write_text('net: "train_test.prototxt"\nbase_lr: 0.01\n')
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "nets")
    return repo


def test_hook_passes_nets_solvers_and_train_val_nets(repo: Path) -> None:
    run = _try_repo(repo)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "protoedit validate" in run.stdout and "Passed" in run.stdout
    # The train/val nets read absent LMDBs: GoogLeNet's ran as its deploy net (an Input layer
    # of its crop size), LeNet's data layer does not tell the input shape, so it is skipped.
    assert "skipped: a solver file, not a net" in run.stdout
    googlenet = run.stdout.split("net: googlenet_train_val.prototxt")[1].split("\n\n")[0]
    assert "batch: 1 (declared 50)" in googlenet and "\nvalid: " in googlenet
    assert re.search(r"\n  data +1 x 3 x 224 x 224\n", googlenet)
    lenet = run.stdout.split("net: lenet_train_test.prototxt")[1].split("\n\n")[0]
    assert "skipped: a train/val net that cannot be made its deploy net here" in lenet
    assert "4 files: 2 valid, 2 skipped" in run.stdout


def test_hook_fails_a_net_caffe_cannot_load(repo: Path) -> None:
    shutil.copy(FIXTURES / "validate" / "missing_bottom.prototxt", repo / "broken.prototxt")
    _git(repo, "add", "broken.prototxt")
    run = _try_repo(repo)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Failed" in run.stdout and "Unknown bottom blob 'image'" in run.stdout
