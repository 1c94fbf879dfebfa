"""Build pycaffe from Caffe's source package and install it into a virtual environment.

Caffe has no usable wheel and no Debian 12 package, so protoedit builds it from the source
package ``brocolli-caffe`` on PyPI (upstream BVLC Caffe plus a few extra layers), CPU only,
with the Makefile it ships.  The build is cached outside the repository, keyed by the source
package version and the Python version, so a second setup only re-links the cache into the
virtual environment.

Run as ``protoedit setup-caffe`` (from a wheel), ``python -m protoedit.caffe.build install``
(what ``make setup`` does; the same code) or ``... where``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from protoedit.errors import ProtoeditError

SOURCE_PACKAGE = "brocolli-caffe"
SOURCE_VERSION = "9.0.2"
#: Bumped whenever our patches to the source change, so that caches built without them rebuild.
BUILD_REVISION = 2

#: Debian packages the Caffe build needs (headers and libraries).
DEBIAN_PACKAGES = (
    "libboost-system-dev",
    "libboost-thread-dev",
    "libboost-filesystem-dev",
    "libboost-regex-dev",
    "libboost-python-dev",
    "libgoogle-glog-dev",
    "libgflags-dev",
    "libprotobuf-dev",
    "protobuf-compiler",
    "libhdf5-dev",
    "libopenblas-dev",
)

#: Headers or programs whose presence shows that each package above is installed.
_DEBIAN_PROBES = (
    "/usr/include/boost/python.hpp",
    "/usr/include/glog/logging.h",
    "/usr/include/gflags/gflags.h",
    "/usr/include/google/protobuf/message.h",
    "/usr/bin/protoc",
    "/usr/include/hdf5/serial/hdf5.h",
    "/usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h",
)

#: Build tools the Caffe Makefile runs, found on PATH: program -> Debian package.
_DEBIAN_TOOLS = {"make": "make", "g++": "g++"}

#: Programs protoedit itself runs, not Caffe (program -> Debian package): `dot` for
#: ``protoedit draw``.  Set up with Caffe, checked even when the build is cached.
RUNTIME_PROGRAMS = {"dot": "graphviz"}
#: Programs only the test suite runs: the headless browser of the sweep contact-sheet and
#: atlas tests, and its WebDriver (for browser drivers that take an installed Chromium).
TEST_PROGRAMS = {"chromium": "chromium", "chromedriver": "chromium-driver"}

_BUILT_STAMP = ".protoedit-built"

#: The extra of protoedit holding what pycaffe imports.
CAFFE_EXTRA = "caffe"


class CaffeBuildError(ProtoeditError):
    """The Caffe build or install could not be completed; the message says what to do."""


def _clone_root() -> Path | None:
    """The checkout this protoedit is installed from in editable mode (what `make setup`
    does), as pip records it in the distribution's ``direct_url.json``; else None (a wheel)."""
    for dist in importlib.metadata.distributions(name="protoedit"):  # a build's egg-info too
        info = json.loads(dist.read_text("direct_url.json") or "{}")
        url = str(info.get("url", ""))
        if info.get("dir_info", {}).get("editable") and url.startswith("file://"):
            return Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    return None


def _in_clone() -> bool:
    """True when this protoedit runs from a clone of its repository (not from a wheel)."""
    root = _clone_root()
    return root is not None and (root / "scripts" / "setup.sh").is_file()


def setup_hint() -> str:
    """How to set up pycaffe, for every "Caffe is missing" message (the one place saying it)."""
    hint = "run `protoedit setup-caffe` to build and install it"
    if _in_clone():
        hint += " (in a clone, `make setup` does the same)"
    return hint


def cache_root() -> Path:
    """The cache folder: ``$PROTOEDIT_CACHE``, else ``$XDG_CACHE_HOME/protoedit`` (~/.cache)."""
    explicit = os.environ.get("PROTOEDIT_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "protoedit"


def build_key() -> str:
    """Cache key: source package version, our patch revision and the Python version."""
    py = f"py{sys.version_info.major}.{sys.version_info.minor}"
    return f"{SOURCE_PACKAGE}-{SOURCE_VERSION}-r{BUILD_REVISION}-{py}"


def source_dir() -> Path:
    """The unpacked Caffe source package (also where it is built)."""
    return cache_root() / "caffe" / build_key() / "src"


def is_built() -> bool:
    """True when a complete build for this Python is in the cache."""
    return (source_dir() / _BUILT_STAMP).is_file()


def build_dir() -> Path:
    """Caffe's release build directory (this fork names it ``.temp_release``)."""
    return source_dir() / ".temp_release"


def tool_path(name: str) -> Path:
    """Path of one of Caffe's own command-line tools, e.g. ``upgrade_net_proto_text``."""
    path = build_dir() / "tools" / f"{name}.bin"
    if not path.is_file():
        raise CaffeBuildError(f"Caffe tool {name!r} not found at {path}; {setup_hint()}")
    return path


def models_dir() -> Path:
    """The ``models/`` folder shipped in the source package (AlexNet, CaffeNet, GoogLeNet, ...)."""
    return source_dir() / "models"


def caffe_proto_path() -> Path:
    """The ``caffe.proto`` of the source package."""
    return source_dir() / "src" / "caffe" / "proto" / "caffe.proto"


def _log(message: str) -> None:
    print(f"[caffe] {message}", file=sys.stderr, flush=True)


def _python_dev_packages() -> list[str]:
    """Debian's headers package for this Python, when it is Debian's Python and they are absent."""
    if sys.base_prefix != "/usr" or (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        return []
    return [f"python{sys.version_info.major}.{sys.version_info.minor}-dev"]


def missing_debian_packages() -> list[str]:
    """The build packages that look absent (probing files, not dpkg, so it is fast)."""
    missing = [package for tool, package in _DEBIAN_TOOLS.items() if shutil.which(tool) is None]
    missing += _python_dev_packages()
    if all(Path(p).exists() for p in _DEBIAN_PROBES):
        return missing
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *DEBIAN_PACKAGES],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    except FileNotFoundError:
        return missing + list(DEBIAN_PACKAGES)
    installed = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
    return missing + [p for p in DEBIAN_PACKAGES if p not in installed]


def ensure_debian_packages() -> None:
    """Install the build's Debian packages when running as root; otherwise say what to run."""
    missing = missing_debian_packages()
    if not missing:
        return
    command = "apt-get install -y " + " ".join(missing)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise CaffeBuildError(
            "the Caffe build needs Debian packages this user cannot install; run "
            f"`sudo apt-get update && sudo {command}`, then run the setup again"
        )
    _log(f"installing Debian packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run(["apt-get", "update", "-qq"], "apt-get update", env=env)
    _run(["apt-get", "install", "-y", "-qq", *missing], "apt-get install", env=env)


def ensure_programs(programs: dict[str, str], what: str) -> None:
    """Install the Debian packages of the missing ``programs`` when running as root;
    otherwise say which line to run (they are not needed by Caffe, so this does not fail)."""
    missing = sorted({package for tool, package in programs.items() if not shutil.which(tool)})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        _log(f"{what} needs `sudo apt-get install -y {' '.join(missing)}`")
        return
    _log(f"installing Debian packages for {what}: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run(["apt-get", "update", "-qq"], "apt-get update", env=env)
    _run(["apt-get", "install", "-y", "-qq", *missing], "apt-get install", env=env)


def _run(command: list[str], what: str, **kwargs: Any) -> None:
    """Run a build step; a failure becomes a :class:`CaffeBuildError` naming the step."""
    try:
        subprocess.run(command, check=True, **kwargs)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise CaffeBuildError(f"{what} failed: {exc}") from exc


_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9][\w.-]*)(?:\[[^]]*\])?\s*(?:>=\s*(\d+(?:\.\d+)*))?")
_RELEASE = re.compile(r"\d+(?:\.\d+)*")


def _release(version: str) -> tuple[int, ...]:
    """The numeric release part of a version: ``"1.16.0rc1"`` -> ``(1, 16, 0)``."""
    match = _RELEASE.match(version)
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def _requirement_met(requirement: str) -> bool:
    """Whether ``name>=version`` (or a bare name) is installed; other operators: by name only."""
    match = _REQUIREMENT.match(requirement)
    if match is None:
        return True
    name, minimum = match.groups()
    try:
        installed = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return minimum is None or _release(installed) >= _release(minimum)


def unmet_requirements(requires: list[str], extra: str) -> list[str]:
    """The requirements of ``extra`` in a metadata ``Requires-Dist`` list that are not installed."""
    wanted = []
    for line in requires:
        spec, _, marker = line.partition(";")
        if re.search(rf"""extra\s*==\s*["']{re.escape(extra)}["']""", marker):
            wanted.append(spec.strip())
    return [spec for spec in wanted if not _requirement_met(spec)]


def _caffe_extra_requires() -> list[str]:
    """``Requires-Dist`` of the installed protoedit (none when it is not installed)."""
    try:
        return importlib.metadata.requires("protoedit") or []
    except importlib.metadata.PackageNotFoundError:
        return []


def missing_python_dependencies() -> list[str]:
    """What pycaffe imports (protoedit's ``caffe`` extra) and this environment lacks."""
    return unmet_requirements(_caffe_extra_requires(), CAFFE_EXTRA)


def ensure_python_dependencies() -> None:
    """Refuse, with the exact pip command, when the ``caffe`` extra is not installed here."""
    missing = missing_python_dependencies()
    if missing:
        command = shlex.join([sys.executable, "-m", "pip", "install", *missing])
        raise CaffeBuildError(
            f"pycaffe needs Python packages this environment lacks (protoedit's "
            f"`{CAFFE_EXTRA}` extra): {', '.join(missing)}; install them with `{command}`"
        )


def _download_source(dest: Path) -> None:
    """Download and unpack the source package into ``dest`` (atomically: via a sibling temp dir)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        _log(f"downloading {SOURCE_PACKAGE}=={SOURCE_VERSION} (source package)")
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"{SOURCE_PACKAGE}=={SOURCE_VERSION}",
                "-d",
                tmp,
            ],
            "downloading the Caffe source package",
        )
        archives = list(Path(tmp).glob("*.tar.gz"))
        if len(archives) != 1:
            raise CaffeBuildError(f"expected one source archive, found {archives}")
        with tarfile.open(archives[0]) as tar:
            tar.extractall(tmp, filter="data")
        unpacked = Path(tmp) / f"{SOURCE_PACKAGE}-{SOURCE_VERSION}"
        if dest.exists():
            shutil.rmtree(dest)
        unpacked.rename(dest)


def _makefile_config(src: Path) -> str:
    """Our Makefile.config: CPU only, no OpenCV/LevelDB/LMDB, OpenBLAS, this Python."""
    import numpy  # the build environment has numpy; imported lazily for `where`

    try:
        multiarch = subprocess.run(
            ["gcc", "-print-multiarch"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise CaffeBuildError(f"gcc -print-multiarch failed: {exc}") from exc
    py_include = sysconfig.get_paths()["include"]
    py_libdir = sysconfig.get_config_var("LIBDIR") or ""
    ver = f"{sys.version_info.major}{sys.version_info.minor}"
    dotted = f"{sys.version_info.major}.{sys.version_info.minor}"
    lib_dir = src / ".temp_release" / "lib"
    return "\n".join(
        [
            "# Written by protoedit.caffe.build; do not edit.",
            "CPU_ONLY := 1",
            "USE_OPENCV := 0",
            "USE_LEVELDB := 0",
            "USE_LMDB := 0",
            "BLAS := open",
            "WITH_PYTHON_LAYER := 1",
            f"PYTHON_INCLUDE := {py_include} {numpy.get_include()}",
            f"PYTHON_LIBRARIES := boost_python{ver} python{dotted}",
            "INCLUDE_DIRS := $(PYTHON_INCLUDE) /usr/local/include /usr/include/hdf5/serial",
            f"LIBRARY_DIRS := {py_libdir} /usr/local/lib /usr/lib "
            f"/usr/lib/{multiarch} /usr/lib/{multiarch}/hdf5/serial",
            # Absolute rpaths: _caffe.so and the tools find libcaffe and libpython with no
            # LD_LIBRARY_PATH (the Makefile's own relative rpath points at a `build/` link
            # this fork does not create).
            f"LINKFLAGS := -Wl,-rpath,{lib_dir} -Wl,-rpath,{py_libdir}",
            "BUILD_DIR := build",
            "DISTRIBUTE_DIR := distribute",
            "Q ?= @",
            "",
        ]
    )


#: Generated files shipped in the source package, made by an old protoc.  The stale header in
#: ``include/`` shadows the one the build generates, and whether a parallel make compiles
#: against it is a race, so they are removed before every build.
_STALE_GENERATED = (
    "include/caffe/proto/caffe.pb.h",
    "src/caffe/proto/caffe.pb.cc",
    "python/caffe/proto/caffe_pb2.py",
)


def _remove_stale_generated(src: Path) -> None:
    for relative in _STALE_GENERATED:
        (src / relative).unlink(missing_ok=True)


#: The fork caps a binary proto read at 512 MiB (``SetTotalBytesLimit(536870912)`` in
#: ``io.cpp``), so VGG-16/19 weights (528/548 MB) abort on load; BVLC reads up to INT_MAX.
_PROTO_LIMIT_FILE = "src/caffe/util/io.cpp"
_PROTO_LIMIT = re.compile(r"SetTotalBytesLimit\(\s*536870912\s*\)")


def _patch_proto_read_limit(src: Path) -> None:
    """Raise the binary proto read limit to INT_MAX, as in BVLC Caffe."""
    path = src / _PROTO_LIMIT_FILE
    text = path.read_text()
    if "SetTotalBytesLimit(INT_MAX)" in text:
        return
    patched, count = _PROTO_LIMIT.subn("SetTotalBytesLimit(INT_MAX)", text)
    if count == 0:
        raise CaffeBuildError(f"{path}: the 512 MiB proto read limit to patch was not found")
    if "<climits>" not in patched:
        patched = "#include <climits>\n" + patched
    path.write_text(patched)


def _run_make(src: Path, log_path: Path) -> None:
    """Run ``make all pycaffe`` with a progress line every few compiled files."""
    jobs = str((os.cpu_count() or 2) + 1)
    _log(f"compiling Caffe with make -j{jobs} (about 5 minutes on 2 cores); log: {log_path}")
    total = sum(1 for _ in (src / "src").rglob("*.cpp")) + sum(
        1 for _ in (src / "tools").glob("*.cpp")
    )
    started = time.monotonic()
    done = 0
    with open(log_path, "w") as log:
        # This fork's object rule does not depend on the generated protobuf header, so a
        # parallel make can compile a file that includes it before protoc has written it:
        # generate it first.
        first = subprocess.run(
            ["make", "proto"], cwd=src, stdout=log, stderr=subprocess.STDOUT, check=False
        )
        if first.returncode != 0:
            raise CaffeBuildError(f"make proto failed (exit {first.returncode}); see {log_path}")
        log.flush()
        proc = subprocess.Popen(
            ["make", f"-j{jobs}", "all", "pycaffe"],
            cwd=src,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if line.startswith(("CXX ", "CXX/LD", "LD ")):
                done += 1
                if done % 25 == 0:
                    elapsed = time.monotonic() - started
                    _log(f"  {done}/~{total} steps, {elapsed:.0f} s")
        code = proc.wait()
    if code != 0:
        for line in log_path.read_text().splitlines()[-30:]:
            _log(f"  {line}")
        raise CaffeBuildError(
            f"make failed (exit {code}); the last lines are above, all in {log_path}"
        )
    _log(f"compiled in {time.monotonic() - started:.0f} s")


def _regenerate_python_proto(src: Path) -> None:
    """The shipped ``caffe_pb2.py`` is stale generated code; regenerate it with this protoc."""
    _run(
        ["protoc", "--proto_path=src", "--python_out=python", "src/caffe/proto/caffe.proto"],
        "protoc (regenerating caffe_pb2.py)",
        cwd=src,
    )


def build() -> Path:
    """Make sure a complete build is in the cache; return the source directory."""
    src = source_dir()
    if is_built():
        _log(f"cached build found: {src}")
        return src
    ensure_debian_packages()
    if not (src / "Makefile").is_file():
        _download_source(src)
    elif build_dir().exists():
        _log("an earlier build did not finish; starting it afresh")
        shutil.rmtree(build_dir())
    _remove_stale_generated(src)
    _patch_proto_read_limit(src)
    (src / "Makefile.config").write_text(_makefile_config(src))
    _run_make(src, src.parent / "build.log")
    _regenerate_python_proto(src)
    (src / _BUILT_STAMP).write_text(f"{build_key()}\n")
    return src


def install(site_packages: Path) -> None:
    """Make ``import caffe`` work in the environment owning ``site_packages`` (a .pth file)."""
    src = build()
    pth = site_packages / "protoedit-pycaffe.pth"
    try:
        pth.write_text(f"{src / 'python'}\n")
    except OSError as exc:
        raise CaffeBuildError(
            f"cannot link pycaffe into this Python ({exc}); use a virtual environment"
        ) from exc
    check = subprocess.run(
        [sys.executable, "-c", "import caffe, caffe.proto.caffe_pb2; print(caffe.__file__)"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"},
        check=False,
    )
    if check.returncode != 0:
        lines = check.stderr.strip().splitlines() or ["(no output)"]
        for line in lines:
            _log(f"  {line}")
        raise CaffeBuildError(f"pycaffe was installed but does not import: {lines[-1]}")
    _log(f"pycaffe ready: {check.stdout.strip()}")


def setup(site_packages: Path | None = None) -> None:
    """``protoedit setup-caffe``: check pycaffe's Python dependencies, build or reuse the cached
    build, and link it into the running environment (``site_packages``: its purelib)."""
    ensure_python_dependencies()
    install(site_packages or Path(sysconfig.get_paths()["purelib"]))
    ensure_programs(RUNTIME_PROGRAMS, "protoedit draw")


def main(argv: list[str] | None = None) -> int:
    """Command line: ``install`` (build if needed, then link into this Python), ``test-tools``
    (the programs only the test suite runs) or ``where``."""
    parser = argparse.ArgumentParser(prog="python -m protoedit.caffe.build", description=__doc__)
    parser.add_argument("action", choices=["install", "test-tools", "where"])
    args = parser.parse_args(argv)
    try:
        if args.action == "install":
            setup()
        elif args.action == "test-tools":
            ensure_programs(TEST_PROGRAMS, "the test suite")
        else:
            print(source_dir())
    except CaffeBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
