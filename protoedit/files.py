"""Reading and writing net files: one decoding for files and stdin, atomic replacement.

Text is UTF-8.  A byte that is not UTF-8 (a Latin-1 ``é`` in a comment, which Caffe accepts)
is decoded with ``surrogateescape`` and encoded back the same way, so it survives a rewrite
byte for byte.  A UTF-8 byte order mark stays in the text (the parser takes it as leading
trivia), so it is written back too.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from protoedit.errors import InputError, Location

#: The name that means standard input on the command line.
STDIN = "-"
#: How stdin is named in messages unless the caller gives a name.
STDIN_NAME = "<stdin>"

_ERRORS = "surrogateescape"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def decode(data: bytes, where: str) -> str:
    """A file's bytes as text (see the module docstring); UTF-16 and binary files are
    refused with what they likely are."""
    if data.startswith(_UTF16_BOMS):
        raise InputError(
            "the file is UTF-16; protoedit reads UTF-8 (convert it with "
            "`iconv -f utf-16 -t utf-8`)",
            Location(where, 1, 1),
        )
    if looks_binary(data):
        raise InputError(BINARY, Location(where))
    return data.decode("utf-8", _ERRORS)


#: What a binary file given for a text one is told.
BINARY = (
    "a binary file, not a text .prototxt (a .caffemodel? weights go to --weights, and "
    "`protoedit check NET --weights FILE` reads them)"
)


def looks_binary(data: bytes) -> bool:
    """True for bytes that are no text file: a NUL byte in the first 8 KiB, or more than one
    byte in ten there that is not UTF-8 (a text file keeps a stray byte here and there)."""
    head = data[:8192]
    if b"\0" in head:
        return True
    stray = len(head.decode("utf-8", _ERRORS)) - len(head.decode("utf-8", "ignore"))
    return stray > max(8, len(head) // 10)


def encode(text: str) -> bytes:
    """The bytes of ``text`` as :func:`decode` read them (stray bytes restored)."""
    return text.encode("utf-8", _ERRORS)


def read_text(path: str | os.PathLike[str]) -> str:
    """A model file's text, exactly (no newline translation); errors name the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", Location(str(path))) from None
    return decode(data, str(path))


def read_source(name: str | os.PathLike[str], stdin_name: str = STDIN_NAME) -> str:
    """The text of a command-line input: a file, or stdin for ``-``, decoded the same way."""
    if str(name) != STDIN:
        return read_text(name)
    stream = sys.stdin
    buffer = getattr(stream, "buffer", None)
    if buffer is None:  # a text stream without bytes underneath (tests, embedding)
        return stream.read()
    return decode(buffer.read(), stdin_name)


def source_name(name: str | os.PathLike[str], stdin_name: str | None = None) -> str:
    """How an input is named in messages: its path, or ``<stdin>`` (or the given name)."""
    return (stdin_name or STDIN_NAME) if str(name) == STDIN else str(name)


def write_atomic(target: str | os.PathLike[str], text: str) -> None:
    """Replace ``target`` with ``text`` so that a reader never sees a half-written file.

    A symlink is followed: the file it points to is replaced and the link stays.  The new
    content goes to a temporary file beside the real target (same file system), is flushed to
    disk, takes over the target's permissions (a new file gets what the umask allows), and is
    renamed over it; on any failure the temporary file is removed and the target is untouched.
    """
    write_atomic_bytes(target, [encode(text)])


def write_atomic_bytes(
    target: str | os.PathLike[str], chunks: Iterable[bytes | memoryview]
) -> None:
    """:func:`write_atomic` for binary content given in pieces (a large file is written
    from its parts, never joined in memory first)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)

    write_atomic_with(target, write)


def write_atomic_with(target: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """:func:`write_atomic` for a writer that needs a path (a library that opens the file
    itself): ``write(tmp)`` fills the temporary file, which then replaces ``target``."""
    shown = str(target)
    path = Path(os.path.realpath(target))
    if path.is_dir():
        raise InputError("cannot write: it is a directory", Location(shown))
    if not path.parent.is_dir():
        raise InputError(f"cannot write: no folder {path.parent}", Location(shown))
    try:
        mode: int | None = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror}", Location(shown)) from None
    fd, tmp = _create_temporary(path, mode, shown)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):  # a full disk, a read-only folder, ...
            raise InputError(f"cannot write: {exc.strerror or exc}", Location(shown)) from exc
        raise
    _sync_folder(path.parent)


def format_file(path: str | os.PathLike[str], *, write: bool = True) -> bool:
    """Whether the file at ``path`` is not in canonical layout
    (:func:`~protoedit.syntax.formatter.format_text`); with ``write``, it is rewritten
    atomically in that layout (nothing is written on an error)."""
    from protoedit.syntax.formatter import format_text

    text = read_text(path)
    formatted = format_text(text, str(path))
    if formatted == text:
        return False
    if write:
        write_atomic(path, formatted)
    return True


def _create_temporary(path: Path, mode: int | None, shown: str) -> tuple[int, Path]:
    """A new file beside ``path``, open for writing: its descriptor and path.

    For a brand-new target it is created with 0o666 so the kernel applies the umask (no
    process-wide umask change, which would race with other threads); a replacement starts
    private and gets the old file's mode before the rename.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(candidate, flags, 0o666 if mode is None else 0o600), candidate
        except FileExistsError:
            continue
        except OSError as exc:
            raise InputError(f"cannot write: {exc.strerror}", Location(shown)) from None
    raise InputError("cannot write: no free temporary file name", Location(shown))


def _sync_folder(folder: Path) -> None:
    """Flush the rename to disk where the platform allows it (best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = [
    "STDIN",
    "STDIN_NAME",
    "decode",
    "encode",
    "read_source",
    "read_text",
    "source_name",
    "write_atomic",
    "write_atomic_bytes",
    "write_atomic_with",
]
