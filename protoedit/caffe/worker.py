"""The parent side of one Caffe child (:mod:`protoedit.caffe.child`): start it, send requests,
wait for answers under a deadline, and say clearly what became of a child that died.

Deadlines are absolute :func:`time.monotonic` values: the caller decides whether one covers a
single request (a per-request timeout) or a whole run of many (see
:meth:`~protoedit.caffe.session.Session.run_deadline`).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from protoedit.caffe.environment import child_environment
from protoedit.caffe.fatal import FatalLog, last_fatal


@dataclass
class Reply:
    """What became of one request: the handler's ``answer``, its refusal, or the child's end.

    ``notes`` are the progress the handler reported, kept even when the child died.
    """

    answer: dict[str, Any] | None = None
    refused: str = ""
    kind: str = ""  # whose fault a refusal or a Python-level failure is
    failed: str = ""  # a Python exception in the handler ("TypeError: ...")
    notes: list[tuple[str, Any]] = field(default_factory=list)
    died: bool = False
    returncode: int | None = None
    timed_out: bool = False
    stderr: str = ""  # what the child printed while serving this request
    seconds: float = 0.0

    def noted(self, key: str) -> list[Any]:
        """The values noted under ``key``, in order."""
        return [value for name, value in self.notes if name == key]

    @property
    def fatal(self) -> FatalLog | None:
        """Caffe's fatal log line, when the child died of a failed CHECK."""
        return last_fatal(self.stderr) if self.died else None

    def death(self, stage: str) -> str:
        """How the child ended during ``stage``, in words: ``Caffe aborted during STAGE:
        <message> (file.cpp:NN)``, ``... died with SIGKILL during STAGE``, ``... exited with
        code N during STAGE: <last line>`` ("" when it did not die)."""
        if not self.died:
            return ""
        fatal = self.fatal
        if fatal is not None:
            return f"Caffe aborted during {stage}: {fatal.message} ({fatal.file}:{fatal.line})"
        code = self.returncode or 0
        if code < 0:
            return f"the Caffe process died with {signal.Signals(-code).name} during {stage}"
        last = self.stderr.strip().splitlines()[-1:] or ["no output"]
        return f"the Caffe process exited with code {code} during {stage}: {last[0]}"


class CaffeUnavailable(Exception):
    """The child could not import Caffe; the message is its reason."""


class Worker:
    """One Caffe child process: Caffe imported once, requests served one at a time."""

    def __init__(
        self,
        *,
        memory_limit: int = 0,
        preload: Sequence[str] = (),
        pythonpath: Sequence[str] = (),
    ) -> None:
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._conn, theirs = multiprocessing.Pipe(duplex=True)
        config = {"fd": theirs.fileno(), "memory_limit": memory_limit, "preload": list(preload)}
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "protoedit.caffe.child", json.dumps(config)],
                stdin=subprocess.DEVNULL,
                stdout=self._stderr,
                stderr=self._stderr,
                env=child_environment(pythonpath),
                pass_fds=(theirs.fileno(),),
                start_new_session=True,  # killed with its process group
            )
        finally:
            theirs.close()
        self.pid = self.proc.pid
        self.ready = False

    def start(self, deadline: float) -> Reply:
        """Wait until Caffe is imported (the worker is then :attr:`ready`); the reply says
        how it died or timed out otherwise.  Raises :class:`CaffeUnavailable`."""
        reply = Reply()
        message = self._receive(reply, deadline)
        if message is not None and "unavailable" in message:
            self.close()
            raise CaffeUnavailable(str(message["unavailable"]))
        self.ready = message is not None and "ready" in message
        if not self.ready:
            self.kill()
            reply.stderr = self._stderr_since(0)
        return reply

    def call(self, request: dict[str, Any], deadline: float) -> Reply:
        """Send one request and wait for its reply until ``deadline`` (then the child is
        killed: its state is unknown)."""
        offset = self._stderr.seek(0, os.SEEK_END)
        started = time.monotonic()
        reply = Reply()
        with contextlib.suppress(OSError):  # it died already: receiving says how
            self._conn.send(request)
        while True:
            message = self._receive(reply, deadline)
            if message is None:
                break
            if "note" in message:
                reply.notes.append(message["note"])
                continue
            reply.answer = message.get("answer")
            reply.refused = message.get("refused", "")
            reply.failed = message.get("failed", "")
            reply.kind = message.get("kind", "")
            break
        reply.seconds = round(time.monotonic() - started, 3)
        reply.stderr = self._stderr_since(offset)
        return reply

    def _receive(self, reply: Reply, deadline: float) -> dict[str, Any] | None:
        """The next message; None when the child died or the deadline passed (both recorded
        in ``reply``, and the child is dead either way)."""
        try:
            if not self._conn.poll(max(0.0, deadline - time.monotonic())):
                reply.timed_out = True
                self.kill()
                return None
            message: dict[str, Any] = self._conn.recv()
            return message
        except (EOFError, OSError):
            self.kill()
            reply.died = True
            reply.returncode = self.proc.returncode
            return None

    def ended(self) -> Reply:
        """The reply of a request this dead worker can no longer take: how it ended."""
        self.kill()
        return Reply(died=True, returncode=self.proc.returncode, stderr=self._stderr_since(0))

    def _stderr_since(self, offset: int) -> str:
        if self._stderr.closed:
            return ""
        self._stderr.seek(offset)
        return self._stderr.read().decode("utf-8", errors="replace")

    @property
    def alive(self) -> bool:
        """Whether the worker can take another request."""
        return self.ready and self.proc.poll() is None

    def kill(self) -> None:
        """Kill the child with its whole process group (Caffe's threads, a Python layer's
        children) and reap it; safe from any thread."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        """Let the child leave (killed if it does not within 10 s) and release its files."""
        if self.proc.poll() is None:
            try:
                self._conn.send(None)
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self._conn.close()
        self._stderr.close()
