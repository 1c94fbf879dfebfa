"""Framing of the messages between a :class:`~protoedit.explain.session.CaffeSession` and its
worker: a 4-byte big-endian length, then a pickled dict (both ends are protoedit itself).

Pickle carries numpy arrays without copies to disk; the worker is our own child process, so
nothing untrusted is ever unpickled.
"""

from __future__ import annotations

import pickle
import struct
from typing import IO, Any

_HEADER = struct.Struct(">I")


def send(stream: IO[bytes], message: dict[str, Any]) -> None:
    """Write one message and flush."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(body)) + body)
    while view:  # an unbuffered pipe may take less than all of it at once
        written = stream.write(view)
        view = view[written if written is not None else len(view) :]
    stream.flush()


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(stream: IO[bytes]) -> dict[str, Any] | None:
    """Read one message; ``None`` when the other end closed the stream (or died)."""
    header = _read_exactly(stream, _HEADER.size)
    if header is None:
        return None
    body = _read_exactly(stream, _HEADER.unpack(header)[0])
    if body is None:
        return None
    message: dict[str, Any] = pickle.loads(body)
    return message
