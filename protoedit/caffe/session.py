"""A warm Caffe worker that many calls reuse: :class:`Session`, and :func:`session` for
``with protoedit.caffe.session() as s: ...``.

A session keeps one child (:class:`~protoedit.caffe.worker.Worker`) with Caffe imported and
replaces it when it dies (Caffe aborted, killed, over its memory limit, past a deadline), so
the next call runs in a fresh one.  Every request whose fields name a net file (``net``)
passes the Python-layer gate first (:mod:`protoedit.caffe.gate`).

Two deadlines, never confused:

- ``request_timeout`` (seconds) bounds each request, counted from when it is sent to a
  worker that is up (starting the worker, that is importing Caffe, has its own
  ``start_timeout``);
- :meth:`Session.run_deadline` bounds a whole run of many requests (e.g. every step of a
  visualisation); each request then waits for the earlier of the two.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from protoedit.caffe.gate import check_python_layers
from protoedit.caffe.worker import CaffeUnavailable, Reply, Worker
from protoedit.errors import CaffeUnavailableError, Location, ProtoeditError

#: Each request's default limit, in seconds from when it is sent.
DEFAULT_REQUEST_TIMEOUT = 600.0
#: How long a child may take to import Caffe (and the preloaded handlers).
START_TIMEOUT = 120.0


class CaffeRunError(ProtoeditError):
    """Caffe refused or aborted while running a net (the fatal line is in the message), or
    did not answer in time."""


class CaffeRefused(CaffeRunError):
    """A handler refused a request, or failed in Python; ``kind`` says whose fault it is
    (``input``, ``weights``, ``caffe``, ``internal``, ``memory``)."""

    def __init__(self, message: str, kind: str, location: Location | None = None) -> None:
        self.kind = kind
        super().__init__(message, location)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.kind, self.location))


def unavailable_error(reason: str) -> CaffeUnavailableError:
    """The error for a child that cannot import pycaffe, with the one setup hint."""
    from protoedit.caffe.build import setup_hint

    return CaffeUnavailableError(f"pycaffe cannot be imported ({reason}); {setup_hint()}")


class Session:
    """One warm Caffe worker, replaced when it dies; use as a context manager or
    :meth:`close` it.  Not for two threads at once (:meth:`kill` excepted).

    ``allow_python_layers`` opens the Python-layer gate; ``memory_limit`` (bytes, 0: none)
    is the child's address-space budget beyond its libraries; ``preload`` names handler
    modules imported (and warmed) before the limit applies.
    """

    def __init__(
        self,
        *,
        allow_python_layers: bool = False,
        memory_limit: int = 0,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        start_timeout: float = START_TIMEOUT,
        preload: Sequence[str] = (),
        pythonpath: Sequence[str] = (),
    ) -> None:
        self.allow_python_layers = allow_python_layers
        self.memory_limit = memory_limit
        self.request_timeout = request_timeout
        self.start_timeout = start_timeout
        self._options = {"memory_limit": memory_limit, "preload": preload, "pythonpath": pythonpath}
        self._worker: Worker | None = None
        self._deadline: float | None = None
        self._tainted = False  # the worker imported a Python layer's module
        self._closed = False
        #: Children started so far: each imported Caffe once.
        self.caffe_imports = 0

    @property
    def pid(self) -> int | None:
        """The current child's process id (None before the first request or after a death)."""
        return self._worker.pid if self._worker is not None else None

    def _start(self) -> Worker | Reply:
        """A live worker, started if needed; the reply of a start that failed otherwise."""
        if self._closed:
            raise CaffeRunError("the Caffe session is closed")
        if self._worker is not None and self._worker.alive:
            return self._worker
        self._drop()
        worker = Worker(**self._options)  # type: ignore[arg-type]
        self.caffe_imports += 1
        try:
            started = worker.start(time.monotonic() + self.start_timeout)
        except CaffeUnavailable as exc:
            raise unavailable_error(str(exc)) from None
        if not worker.ready:
            worker.close()
            return started
        self._worker = worker
        return worker

    def start(self) -> None:
        """Start the worker now (Caffe imported) rather than on the first request."""
        started = self._start()
        if isinstance(started, Reply):
            raise CaffeRunError(_failure(started, "import", self.start_timeout))

    def _drop(self) -> None:
        worker, self._worker = self._worker, None
        self._tainted = False
        if worker is not None:
            worker.close()

    def _gate(self, fields: dict[str, Any], allow: bool) -> str | None:
        """The Python-layer gate for a request naming a net file; the folder of its Python
        layers' modules when it has some (None otherwise)."""
        net = fields.get("net")
        if not net:
            return None
        shown = str(fields.get("net_path") or net)
        text = Path(net).read_text(encoding="utf-8", errors="replace")
        phase = str(fields.get("phase") or "TEST")
        if not check_python_layers(text, shown, phase=phase, allow=allow):
            return None
        folder = fields.get("module_dir") or os.path.dirname(os.path.abspath(shown))
        return str(folder)

    def call(
        self,
        handler: str,
        op: str,
        fields: dict[str, Any],
        *,
        request_timeout: float | None = None,
        worker_pid: int | None = None,
        allow_python_layers: bool = False,
    ) -> Reply:
        """Run ``op`` of ``handler`` (a module with a ``HANDLERS`` table, imported in the
        child) on ``fields``; the raw :class:`Reply`, whatever became of the worker.
        ``worker_pid``: the request needs that very child (it holds state, a loaded net);
        if it is gone the reply says how it ended, and no other child is started.
        ``allow_python_layers`` opens the gate for this request (as the session's own
        ``allow_python_layers`` does for all).

        Raises :class:`~protoedit.caffe.gate.PythonLayersRefused` before sending a net with
        Python layers that are not allowed, :class:`CaffeUnavailableError` when Caffe
        cannot be imported.
        """
        if worker_pid is not None:
            worker = self._worker
            if worker is None or worker.pid != worker_pid:
                raise CaffeRunError("the Caffe worker that held this net is gone")
            if not worker.alive:
                reply = worker.ended()
                self._drop()
                return reply
        module_dir = self._gate(fields, allow_python_layers or self.allow_python_layers)
        if fields.get("net") and self._tainted:
            self._drop()  # a Python layer's module stays imported: a new net gets a new child
        started = self._start()
        if isinstance(started, Reply):
            return started
        request = {"handler": handler, "op": op, "fields": fields}
        if module_dir is not None:
            request["module_dir"] = module_dir
            self._tainted = True
        limit = self.request_timeout if request_timeout is None else request_timeout
        deadline = time.monotonic() + limit
        if self._deadline is not None:
            deadline = min(deadline, self._deadline)
        reply = started.call(request, deadline)
        if reply.died or reply.timed_out:
            self._drop()
        return reply

    def request(
        self,
        handler: str,
        op: str,
        *,
        request_timeout: float | None = None,
        worker_pid: int | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """:meth:`call`, with every outcome but an answer raised: :class:`CaffeRefused` for a
        refusal, :class:`CaffeRunError` for a death or a missed deadline."""
        reply = self.call(
            handler, op, fields, request_timeout=request_timeout, worker_pid=worker_pid
        )
        if reply.answer is not None:
            return reply.answer
        if reply.refused or reply.failed:
            return _raise_refused(reply, op)
        limit = self.request_timeout if request_timeout is None else request_timeout
        raise CaffeRunError(_failure(reply, op, limit))

    @contextlib.contextmanager
    def run_deadline(self, seconds: float) -> Iterator[None]:
        """A deadline for every request made inside the block together (a whole run),
        on top of each request's own ``request_timeout``."""
        outer = self._deadline
        mine = time.monotonic() + seconds
        self._deadline = mine if outer is None else min(outer, mine)
        try:
            yield
        finally:
            self._deadline = outer

    def kill(self) -> None:
        """Kill the worker now, from any thread (an interrupted run); a request in flight
        then fails with :class:`CaffeRunError`, and the next one starts a fresh worker."""
        worker = self._worker
        if worker is not None:
            worker.kill()

    def close(self) -> None:
        """Stop the worker; the session takes no further requests."""
        self._closed = True
        self._drop()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _raise_refused(reply: Reply, op: str) -> dict[str, Any]:
    if reply.refused:
        raise CaffeRefused(reply.refused, reply.kind)
    raise CaffeRefused(f"Caffe failed during {op}: {reply.failed}", reply.kind)


def _failure(reply: Reply, stage: str, limit: float) -> str:
    """Why a request got no answer: the child's death, or the deadline."""
    if reply.timed_out:
        return f"Caffe did not answer within {limit:g} s (during {stage}); the child was killed"
    return reply.death(stage)


@contextlib.contextmanager
def session(**options: Any) -> Iterator[Session]:
    """A warm :class:`Session` for a block of library calls (``session=s``); closed after.
    ``options`` are :class:`Session`'s."""
    with Session(**options) as opened:
        yield opened
