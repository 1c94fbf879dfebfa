"""Long-lived Caffe workers (``protoedit.validate.child``) and a pool that spreads requests over
them.

A worker imports Caffe once and validates net after net.  One that Caffe aborts, that runs
past the timeout or that dies for its memory limit takes only its current request with it: the
pool starts a fresh worker for the next one.  The outcome of a request is raw (the result line,
or what is known of the death); :mod:`protoedit.validate.runner` turns it into a report.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any


@dataclass
class Outcome:
    """What became of one request: the child's ``result`` dict, or how the worker ended."""

    result: dict[str, Any] | None = None
    stages: list[str] = field(default_factory=list)
    data_layers: list[str] = field(default_factory=list)
    #: How the child meant to run the net (``param_gradients``; ``fallback``: the request
    #: changes to run again with should the worker die), known even if it died.
    plan: dict[str, Any] = field(default_factory=dict)
    #: The first attempt, when its worker died and the request ran again with its fallback.
    retried: Outcome | None = None
    stderr: str = ""
    returncode: int | None = None
    timed_out: bool = False
    seconds: float = 0.0

    @property
    def stage(self) -> str:
        """The last stage the child reached ("start" before any)."""
        return self.stages[-1] if self.stages else "start"


class Worker:
    """One ``protoedit.validate.child`` process under an address-space limit."""

    def __init__(self, memory_limit: int, env: dict[str, str]) -> None:
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "protoedit.validate.child", str(memory_limit)],
            bufsize=0,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            start_new_session=True,
        )
        self._buffer = b""
        self.ready = False

    def _line(self, deadline: float) -> str | None:
        """The next stdout line; "" at end of file, None when ``deadline`` passed first."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return ""
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", errors="replace") + "\n"

    def _collect(self, outcome: Outcome, deadline: float, until: str) -> None:
        """Read stage/scan lines into ``outcome`` until a ``result:`` line, or the ``until``
        stage, end of file (the worker died) or the deadline."""
        while True:
            line = self._line(deadline)
            if line is None:
                outcome.timed_out = True
                return
            if not line:
                self.kill()
                outcome.returncode = self.proc.returncode
                return
            text = line.rstrip("\n")
            if text.startswith("stage: "):
                outcome.stages.append(text[7:])
                if text[7:] == until:
                    return
            elif text.startswith("plan: "):
                outcome.plan = json.loads(text[6:])
            elif text.startswith("scan: "):
                outcome.data_layers = json.loads(text[6:]).get("data_layers", [])
            elif text.startswith("result: "):
                outcome.result = json.loads(text[8:])
                return

    def start(self, timeout: float) -> Outcome:
        """Wait until Caffe is imported; the outcome holds a result only if it cannot be."""
        outcome = Outcome()
        self._collect(outcome, time.monotonic() + timeout, until="ready")
        self.ready = outcome.stage == "ready" and outcome.result is None
        if not self.ready:
            outcome.stderr = self._stderr_since(0)
        return outcome

    def run(self, request: dict[str, Any], timeout: float) -> Outcome:
        """Send one request and wait for its result, at most ``timeout`` seconds."""
        assert self.proc.stdin is not None
        offset = self._stderr.seek(0, os.SEEK_END)
        started = time.monotonic()
        outcome = Outcome()
        with contextlib.suppress(BrokenPipeError):  # it died already: reading says how
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self._collect(outcome, started + timeout, until="")
        outcome.seconds = round(time.monotonic() - started, 3)
        if outcome.timed_out:
            self.kill()
        outcome.stderr = self._stderr_since(offset)
        if outcome.result is not None and outcome.result.pop("worker_exits", False):
            self.close()
        return outcome

    def _stderr_since(self, offset: int) -> str:
        self._stderr.seek(offset)
        return self._stderr.read().decode("utf-8", errors="replace")

    @property
    def alive(self) -> bool:
        """Whether the worker can take another request."""
        return self.ready and self.proc.poll() is None

    def kill(self) -> None:
        """Kill the worker with its whole process group (Caffe's threads, a Python layer's
        children) and reap it."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        """Let the worker leave (end of its input), killing it if it does not."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


class CaffeUnavailable(Exception):
    """A worker could not import Caffe; the message is the child's reason."""


def run_requests(
    requests: Sequence[dict[str, Any]],
    *,
    jobs: int,
    memory_limit: int,
    timeout: float,
    env: dict[str, str],
) -> Iterator[tuple[int, Outcome]]:
    """Run ``requests`` on ``jobs`` workers; yield ``(index, outcome)`` as each finishes.

    Raises :class:`CaffeUnavailable` when Caffe cannot be imported at all.
    """
    todo: queue.Queue[int] = queue.Queue()
    for index in range(len(requests)):
        todo.put(index)
    done: queue.Queue[tuple[int, Outcome] | BaseException | None] = queue.Queue()
    stop = threading.Event()

    def serve() -> None:
        worker: Worker | None = None

        def run(request: dict[str, Any]) -> Outcome:
            """``request`` on a live worker (started afresh if the last one died)."""
            nonlocal worker
            if worker is None or not worker.alive:
                if worker is not None:
                    worker.close()
                worker = Worker(memory_limit, env)
                started = worker.start(timeout)
                if started.result is not None and started.result.get("cause") == (
                    "caffe_unavailable"
                ):
                    raise CaffeUnavailable(str(started.result["reason"]))
                if not worker.ready:  # it died or hung importing: the request gets that
                    worker.kill()
                    return started
            return worker.run(request, timeout)

        try:
            while not stop.is_set():
                try:
                    index = todo.get_nowait()
                except queue.Empty:
                    return
                outcome = run(requests[index])
                fallback = outcome.plan.get("fallback")
                if outcome.result is None and not outcome.timed_out and fallback:
                    first = outcome
                    outcome = run({**requests[index], **fallback})
                    outcome.retried = first
                    outcome.seconds = round(outcome.seconds + first.seconds, 3)
                done.put((index, outcome))
        except BaseException as exc:  # handed to the consumer, raised there
            done.put(exc)
        finally:
            if worker is not None:
                worker.close()
            done.put(None)

    threads = [threading.Thread(target=serve, daemon=True) for _ in range(max(1, jobs))]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            item = done.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        stop.set()
        for thread in threads:
            thread.join()
