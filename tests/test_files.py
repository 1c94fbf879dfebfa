"""protoedit.files: files and stdin decoded alike, byte-exact round trips, atomic writes."""

from __future__ import annotations

import io
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from protoedit import InputError, ProtoeditError, load
from protoedit.files import read_source, read_text, write_atomic

from .helpers import FIXTURES

LENET = FIXTURES / "lenet_deploy.prototxt"
BOM = b"\xef\xbb\xbf"
#: A file Caffe reads: a BOM, Latin-1 bytes in comments, CRLF line ends.
AWKWARD = BOM + b"# caf\xe9 \xff\r\nname: 'x'  # na\xefve\r\nlayer { name: 'a' }\r\n"


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run(
        ["protoedit", *args], input=stdin, capture_output=True, env=env, check=False
    )


def test_stdin_is_decoded_exactly_like_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "awkward.prototxt"
    path.write_bytes(AWKWARD)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(AWKWARD), encoding="ascii"))
    from_stdin = read_source("-")
    assert from_stdin == read_text(path) == read_source(str(path))
    assert from_stdin.startswith("\ufeff# caf") and "\r\n" in from_stdin


def test_bom_and_stray_bytes_survive_format_and_rewrites_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "awkward.prototxt"
    path.write_bytes(AWKWARD)
    formatted = _run("format", str(path))
    assert formatted.returncode == 0, formatted.stderr
    assert formatted.stdout.startswith(BOM + b"# caf\xe9 \xff\r\n")
    assert b"  # na\xefve\r\nlayer {\r\n  name: 'a'\r\n}\r\n" in formatted.stdout
    assert _run("format", "-", stdin=AWKWARD).stdout == formatted.stdout
    assert _run("format", "-i", str(path)).returncode == 0
    assert path.read_bytes() == formatted.stdout
    assert _run("format", "--check", str(path)).returncode == 0

    path.write_bytes(AWKWARD)
    rewritten = _run("force-backward", str(path))
    assert rewritten.returncode == 0, rewritten.stderr
    assert rewritten.stdout == AWKWARD.replace(b"\r\nlayer", b"\r\nforce_backward: true\r\nlayer")
    assert _run("force-backward", "-", stdin=AWKWARD).stdout == rewritten.stdout
    out = tmp_path / "out.prototxt"
    assert _run("force-backward", str(path), "-o", str(out)).returncode == 0
    assert out.read_bytes() == rewritten.stdout
    diff = _run("force-backward", "--diff", str(path)).stdout
    assert b"\n " + BOM + b"# caf\xe9 \xff\r\n" in diff and b"\n+force_backward: true\r\n" in diff


def test_a_stray_byte_in_a_string_value_is_a_located_error_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "latin1.prototxt"
    path.write_bytes(b'name: "caf\xe9"\n')
    with pytest.raises(ProtoeditError) as caught:
        load(path)
    assert str(caught.value).startswith(f"{path}:1:7: 'name': byte 0xE9 in this string")
    assert "iconv -f latin1 -t utf-8" in caught.value.message


def test_utf16_is_refused_with_the_conversion_to_run(tmp_path: Path) -> None:
    path = tmp_path / "wide.prototxt"
    path.write_bytes('name: "x"\n'.encode("utf-16"))
    with pytest.raises(InputError, match=r"wide\.prototxt:1:1: the file is UTF-16.*iconv"):
        read_text(path)


def test_write_atomic_follows_symlinks_and_keeps_the_link_and_mode(tmp_path: Path) -> None:
    real = tmp_path / "models" / "real.prototxt"
    real.parent.mkdir()
    real.write_text("layer { name: 'a' }\n")
    real.chmod(0o640)
    link = tmp_path / "alias.prototxt"
    link.symlink_to(os.path.relpath(real, tmp_path))
    assert _run("format", "-i", str(link)).returncode == 0
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert real.read_text() == "layer {\n  name: 'a'\n}\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(p.name for p in real.parent.iterdir()) == ["real.prototxt"]  # no temp file
    assert _run("force-backward", "-i", str(link)).returncode == 0
    assert link.is_symlink() and real.read_text().startswith("force_backward: true\n")


def test_write_atomic_gives_a_new_file_the_umask_mode_without_touching_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(_mask: int) -> int:
        raise AssertionError("os.umask changes the mask for every thread of the process")

    old = os.umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", forbidden)
        write_atomic(tmp_path / "new.prototxt", "x: 1\n")
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.prototxt").stat().st_mode) == 0o666 & ~0o027


@pytest.mark.parametrize(
    ("where", "message"),
    [("missing/out.prototxt", "cannot write: no folder"), (".", "cannot write: it is a directory")],
)
def test_write_atomic_refuses_with_a_located_error_and_writes_nothing(
    tmp_path: Path, where: str, message: str
) -> None:
    target = tmp_path / where
    with pytest.raises(InputError, match=f"^{re.escape(str(target))}: {message}"):
        write_atomic(target, "x: 1\n")
    assert list(tmp_path.iterdir()) == []


def test_write_atomic_turns_a_failed_write_into_a_located_error_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "net.prototxt"
    target.write_text("x: 1\n")

    def full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(InputError, match=r"net\.prototxt: cannot write: No space left on device"):
        write_atomic(target, "x: 2\n")
    assert target.read_text() == "x: 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["net.prototxt"]
