"""Setting Caffe up without a clone: `protoedit setup-caffe`, its messages, and a real wheel."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from protoedit import ProtoeditError
from protoedit.caffe import build as caffe_build
from protoedit.cli import main

from .assets.digits import TrainedDigits
from .helpers import FIXTURES, IN_CI, ROOT

NO_SUCH_DIST = "protoedit-test-no-such-distribution"


def test_caffe_build_error_is_a_protoedit_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROTOEDIT_CACHE", str(tmp_path))
    with pytest.raises(ProtoeditError) as caught:
        caffe_build.tool_path("upgrade_net_proto_text")
    assert isinstance(caught.value, caffe_build.CaffeBuildError)
    assert "run `protoedit setup-caffe`" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_setup_hint_mentions_make_setup_only_in_a_clone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_clone = caffe_build.setup_hint()
    assert "`protoedit setup-caffe`" in in_clone and "`make setup`" in in_clone
    monkeypatch.setattr(caffe_build, "_clone_root", lambda: None)  # as installed from a wheel
    from_wheel = caffe_build.setup_hint()
    assert "`protoedit setup-caffe`" in from_wheel and "make" not in from_wheel


def test_unmet_requirements_are_the_extras_missing_or_too_old() -> None:
    requires = [
        'numpy>=1.0; extra == "caffe"',  # installed and new enough
        'numpy>=99999; extra == "caffe"',  # installed, too old
        f"{NO_SUCH_DIST}>=1 ; extra == 'caffe'",  # not installed
        f'{NO_SUCH_DIST}; extra == "dev"',  # another extra
        NO_SUCH_DIST,  # a core dependency
    ]
    assert caffe_build.unmet_requirements(requires, "caffe") == [
        "numpy>=99999",
        f"{NO_SUCH_DIST}>=1",
    ]


def test_the_clone_is_found_from_the_editable_install_record() -> None:
    # `make setup` installs this checkout in editable mode: pip's direct_url.json names it,
    # so no module of the package computes a path outside itself to find the clone.
    assert caffe_build._clone_root() == ROOT


def test_caffe_extra_read_from_the_installed_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    requires = ['numpy>=1.0; extra == "caffe"', f'{NO_SUCH_DIST}>=2; extra == "caffe"']
    monkeypatch.setattr(caffe_build.importlib.metadata, "requires", lambda name: requires)
    assert caffe_build.missing_python_dependencies() == [f"{NO_SUCH_DIST}>=2"]


def test_setup_caffe_without_the_extra_prints_the_pip_command_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(caffe_build, "missing_python_dependencies", lambda: [f"{NO_SUCH_DIST}>=2"])

    def must_not_build(site_packages: Path) -> None:
        raise AssertionError("setup-caffe built before checking the Python dependencies")

    monkeypatch.setattr(caffe_build, "install", must_not_build)
    assert main(["setup-caffe"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("protoedit: error: ")
    assert f"{sys.executable} -m pip install '{NO_SUCH_DIST}>=2'" in err
    assert "`caffe` extra" in err


def test_missing_build_tools_are_named_for_apt_get_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_which = shutil.which
    monkeypatch.setattr(
        caffe_build.shutil,
        "which",
        lambda name, *args, **kwargs: None if name == "g++" else real_which(name),
    )
    assert "g++" in caffe_build.missing_debian_packages()
    monkeypatch.setattr(caffe_build.os, "geteuid", lambda: 1000)  # not root: print, not install
    with pytest.raises(caffe_build.CaffeBuildError) as caught:
        caffe_build.ensure_debian_packages()
    message = str(caught.value)
    assert "\n" not in message
    assert "sudo apt-get install -y " in message and " g++" in message


def test_debians_python_without_its_headers_needs_the_dev_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(caffe_build.sys, "base_prefix", "/usr")  # Debian's own Python
    paths = dict(sysconfig.get_paths(), include=str(tmp_path))  # ... with no Python.h
    monkeypatch.setattr(caffe_build.sysconfig, "get_paths", lambda: paths)
    package = f"python{sys.version_info.major}.{sys.version_info.minor}-dev"
    assert package in caffe_build.missing_debian_packages()
    (tmp_path / "Python.h").touch()
    assert package not in caffe_build.missing_debian_packages()


SETUP_INPUTS = ["Makefile", "pyproject.toml", "scripts/setup.sh", "protoedit/caffe/build.py"]


def _make_plan(folder: Path, target: str) -> str:
    """The commands ``make -n TARGET`` would run in ``folder``."""
    return subprocess.run(
        ["make", "-n", target], cwd=folder, capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("changed", SETUP_INPUTS)
def test_make_sets_up_again_when_a_setup_input_changes(tmp_path: Path, changed: str) -> None:
    for relative in SETUP_INPUTS:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, tmp_path / relative)
        os.utime(tmp_path / relative, (1_000_000, 1_000_000))
    stamp = tmp_path / ".venv" / ".protoedit-setup"
    stamp.parent.mkdir()
    stamp.touch()
    os.utime(stamp, (1_500_000_000, 1_500_000_000))  # explicit times: no race on clock ticks
    assert "setup.sh" not in _make_plan(tmp_path, "test")  # the stamp is newer: no setup
    assert "setup.sh" in _make_plan(tmp_path, "setup")  # an explicit setup always runs
    os.utime(tmp_path / changed, (1_600_000_000, 1_600_000_000))  # now newer than the stamp
    assert "setup.sh" in _make_plan(tmp_path, "test")


def _script(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


def test_setup_sh_remakes_a_venv_without_pip_and_names_the_venv_package(tmp_path: Path) -> None:
    shutil.copy(ROOT / "scripts" / "setup.sh", _mkdir(tmp_path / "scripts") / "setup.sh")
    _script(tmp_path / ".venv" / "bin" / "python", "exit 1\n")  # a venv left without pip
    bin_dir = tmp_path / "bin"
    # Debian's Python without python3.X-venv: `venv` makes a half venv, then fails.
    _script(
        bin_dir / "python3",
        'if [ "$1" = -m ] && [ "$2" = venv ]; then mkdir -p "$3/bin"; exit 1; fi\n'
        f'exec {sys.executable} "$@"\n',
    )
    _script(bin_dir / "id", "echo 1000\n")  # not root: print the apt-get line, do not run it
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", PYTHON="python3")
    proc = subprocess.run(
        ["bash", "scripts/setup.sh"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stderr
    assert "setup: creating .venv" in proc.stderr
    package = f"python{sys.version_info.major}.{sys.version_info.minor}-venv"
    assert f"sudo apt-get install -y {package}" in proc.stderr
    assert not (tmp_path / ".venv").exists()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run(
    argv: list[str | Path], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"{argv}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc


#: A Caffe build takes minutes (about 4 on 2 cores); re-linking the cache takes the one
#: `import caffe` check, a few seconds. Anything under this bound did not compile.
REUSE_BOUND = 60.0


#: The test assets that once shipped as library code (they live in tests/assets now).
_ASSETS = {"digits.py", "_train_digits.py", "train_digits.py", "models.py"}


def _outside_problems(files: dict[str, str | None]) -> list[str]:
    """What in a package's files (name -> text of a ``.py``, else None) points outside the
    installed package: files outside ``protoedit/`` (and its metadata), the test assets, and
    code reaching for the checkout's folders or downloading with pip."""
    problems = []
    for name, text in files.items():
        if not name.startswith(("protoedit/", "protoedit-")):
            problems.append(f"{name}: outside the package")
        elif name.rsplit("/", 1)[-1] in _ASSETS:
            problems.append(f"{name}: a test asset")
        elif text is not None:
            for needle in ('"fixtures"', "parents[2]", '"tests"', "pip download"):
                if needle in text:
                    problems.append(f"{name}: mentions {needle}")
    return problems


def _wheel_problems(wheel: Path) -> list[str]:
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        return _outside_problems(
            {n: archive.read(n).decode() if n.endswith(".py") else None for n in names}
        )


def test_the_package_carries_no_path_outside_itself() -> None:
    files = {
        path.relative_to(ROOT).as_posix(): path.read_text()
        for path in (ROOT / "protoedit").rglob("*.py")
    }
    assert files and _outside_problems(files) == []


@pytest.mark.caffe
@pytest.mark.slow
def test_wheel_in_a_fresh_venv_sets_up_caffe_from_the_cache(
    tmp_path: Path, digits_model: TrainedDigits
) -> None:
    if not caffe_build.is_built():
        reason = f"no cached Caffe build at {caffe_build.source_dir()}"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: Caffe tests must run)", pytrace=False)
        pytest.skip(reason)
    started = time.monotonic()
    # The wheel is built from a copy, so the build leaves nothing in the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "grammars", src / "grammars", ignore=ignore)
    shutil.copytree(ROOT / "protoedit", src / "protoedit", symlinks=True, ignore=ignore)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["GLOG_minloglevel"] = "2"
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, src], env, tmp_path)
    (wheel,) = dist.glob("protoedit-*.whl")
    assert _wheel_problems(wheel) == []

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], env, tmp_path)
    python, protoedit = venv / "bin" / "python", venv / "bin" / "protoedit"
    # --no-compile: byte-compiling scipy and scikit-image is pip's own work, not what this
    # test checks, and would double the time of each install (17 s against 7 s here)
    quiet = ["-q", "--disable-pip-version-check", "--no-compile"]
    pip = [python, "-m", "pip", "install", *quiet]
    _run([*pip, "--find-links", dist, wheel], env, tmp_path)  # first without the extra
    where = _run([python, "-c", "import protoedit; print(protoedit.__file__)"], env, tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(venv)  # the wheel's code, not the clone's

    refused = subprocess.run(
        [protoedit, "setup-caffe"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    command = refused.stderr.split("install them with `")[1].rstrip("`\n")
    assert shlex.split(command)[:4] == [str(python), "-m", "pip", "install"]
    assert "scikit-image>=0.21" in shlex.split(command)  # from the wheel's metadata
    _run([*shlex.split(command), *quiet], env, tmp_path)
    _run([*pip, "--find-links", dist, f"{wheel}[caffe]"], env, tmp_path)  # as the README says
    installed = time.monotonic()

    setup = _run([protoedit, "setup-caffe"], env, tmp_path)
    setup_seconds = time.monotonic() - installed
    assert f"cached build found: {caffe_build.source_dir()}" in setup.stderr
    assert "compiling" not in setup.stderr and "pycaffe ready" in setup.stderr
    assert setup_seconds < REUSE_BOUND
    purelib = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env, tmp_path
    ).stdout.strip()
    pth = Path(purelib) / "protoedit-pycaffe.pth"
    assert pth.read_text().strip() == str(caffe_build.source_dir() / "python")
    assert sysconfig.get_paths()["purelib"] != purelib  # linked into the venv, not into ours

    aux_net = tmp_path / "lenet_aux.prototxt"
    lenet = FIXTURES / "lenet_deploy.prototxt"
    _run(
        [protoedit, "aux", lenet, "--target", "conv2", "--channel", "3", "-o", aux_net],
        env,
        tmp_path,
    )
    report = _run([protoedit, "validate", aux_net], env, tmp_path)
    assert "valid: forward and backward ran" in report.stdout
    _explain_from_the_wheel(protoedit, digits_model, env, tmp_path)
    print(
        f"wheel test: {installed - started:.1f} s to build and install the wheel, "
        f"{setup_seconds:.1f} s setup-caffe, {time.monotonic() - started:.1f} s in all"
    )


def _explain_from_the_wheel(
    protoedit: Path, digits: TrainedDigits, env: dict[str, str], tmp_path: Path
) -> None:
    """``grad``, ``saliency`` and ``visualize`` of the installed wheel on a net and weights
    given on the command line (the digits net copied out of the cache): nothing they need
    comes from the checkout."""
    import numpy as np

    given = _mkdir(tmp_path / "given")
    deploy, weights = given / "net.prototxt", given / "net.caffemodel"
    shutil.copy(digits.deploy, deploy)
    shutil.copy(digits.weights, weights)
    split = np.load(digits.split)
    digit, label = given / "digit.npy", str(int(split["labels"][0]))
    np.save(digit, split["images"][0])
    model = [deploy, "--weights", weights]
    grads = tmp_path / "grads.npz"
    _run([protoedit, "grad", *model, "--input", digit, "--target", "ip2", "--class", label,
          "-o", grads], env, tmp_path)  # fmt: skip
    assert {"input/data", "conv1/weight"} <= set(np.load(grads).files)
    picture = tmp_path / "map.png"
    _run([protoedit, "saliency", *model, "--image", digit, "--class", label, "-o", picture],
         env, tmp_path)  # fmt: skip
    assert picture.read_bytes().startswith(b"\x89PNG")
    grid = tmp_path / "grid.png"
    _run([protoedit, "visualize", *model, "--target", "conv2", "--channels", "0-1",
          "--steps", "20", "--scale", repr(1 / 255), "-q", "-o", grid], env, tmp_path)  # fmt: skip
    assert grid.read_bytes().startswith(b"\x89PNG")
    units = json.loads(grid.with_suffix(".json").read_text())["units"]
    assert [unit["label"] for unit in units] == ["conv2[0]", "conv2[1]"]


def test_missing_tool_programs_are_named_not_fatal_without_root(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `dot` (protoedit draw) and chromium (a test) are not Caffe's: a user who cannot install
    # them is told the apt-get line, and the setup goes on.
    monkeypatch.setattr(caffe_build.shutil, "which", lambda name: None)
    monkeypatch.setattr(caffe_build.os, "geteuid", lambda: 1000)
    caffe_build.ensure_programs(caffe_build.RUNTIME_PROGRAMS, "protoedit draw")
    assert "sudo apt-get install -y graphviz" in capsys.readouterr().err
    assert caffe_build.RUNTIME_PROGRAMS == {"dot": "graphviz"}
    assert "chromium" not in caffe_build.DEBIAN_PACKAGES  # not a build dependency
