"""A pool of warm Caffe workers: ``workers`` threads, each owning one
:class:`~protoedit.caffe.session.Session` (and whatever state is built on it), taking tasks
from one queue.

A thread only sends requests and waits, so the GIL is no bottleneck; the work runs in the
children, each on one BLAS thread.  Validate's ``--jobs`` and the sweep's local engine run on
it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from protoedit.caffe.session import Session

S = TypeVar("S")
T = TypeVar("T")


class _Failed:
    """A task's exception, handed to the consumer to raise."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Pool(Generic[S]):
    """``workers`` threads, each with a Session and ``make_state(session)`` (the session
    itself by default) that its tasks receive; results come back in finishing order.

    ``session_options`` are :class:`Session`'s.  Tasks are ``(key, function)`` pairs;
    :meth:`next` returns ``(key, result)``, raising what a task raised.
    """

    def __init__(
        self,
        workers: int,
        make_state: Callable[[Session], S] | None = None,
        close_state: Callable[[S], None] | None = None,
        **session_options: Any,
    ) -> None:
        self._make_state = make_state
        self._close_state = close_state
        self._options = session_options
        self._todo: queue.Queue[tuple[Any, Callable[[S], Any]] | None] = queue.Queue()
        self._done: queue.Queue[tuple[Any, Any] | _Failed] = queue.Queue()
        self._stopping = threading.Event()
        self.sessions: list[Session] = []
        self.states: list[S] = []
        for _ in range(max(1, workers)):
            opened = Session(**session_options)
            self.sessions.append(opened)
            self.states.append(make_state(opened) if make_state else opened)  # type: ignore[arg-type]
        self._threads = [
            threading.Thread(target=self._work, args=(state,), name=f"caffe-{n}", daemon=True)
            for n, state in enumerate(self.states)
        ]
        for thread in self._threads:
            thread.start()

    def _work(self, state: S) -> None:
        while not self._stopping.is_set():
            task = self._todo.get()
            if task is None:
                return
            key, function = task
            try:
                result: tuple[Any, Any] | _Failed = (key, function(state))
            except BaseException as exc:  # handed to the consumer, raised there
                result = _Failed(exc)
            if not self._stopping.is_set():
                self._done.put(result)

    def submit(self, key: Any, function: Callable[[S], T]) -> None:
        """Queue ``function(state)`` under ``key``."""
        self._todo.put((key, function))

    def next(self, timeout: float | None = None) -> tuple[Any, Any] | None:
        """The next finished ``(key, result)``; None after ``timeout`` seconds."""
        try:
            item = self._done.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, _Failed):
            raise item.error
        return item

    def map_unordered(
        self, tasks: Iterable[tuple[Any, Callable[[S], T]]]
    ) -> Iterator[tuple[Any, T]]:
        """Submit every task, then yield ``(key, result)`` as each finishes."""
        count = 0
        for key, function in tasks:
            self.submit(key, function)
            count += 1
        for _ in range(count):
            item = self.next()
            assert item is not None
            yield item

    def stop(self) -> None:
        """Abandon the work in flight at once: every worker is killed, then closed."""
        self._stopping.set()
        for opened in self.sessions:
            opened.kill()
        self.close()

    def close(self) -> None:
        """Let the threads finish their task, then close every state and session."""
        for _ in self._threads:
            self._todo.put(None)
        for thread in self._threads:
            thread.join(timeout=30)
        for state, opened in zip(self.states, self.sessions, strict=True):
            if self._close_state is not None:
                self._close_state(state)
            opened.close()

    def __enter__(self) -> Pool[S]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop() if exc[0] is not None else self.close()
