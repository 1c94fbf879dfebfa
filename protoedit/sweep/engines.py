"""Where work items run: ``local`` (one worker per core on this machine) or ``ray`` (actors).

Both are pools with the same small interface: :meth:`submit` an item, wait for the
:meth:`next` outcome, :meth:`stop` at once (Ctrl-C), :meth:`close`.  The local engine is a
:class:`protoedit.caffe.Pool`: driver threads, each with a warm Caffe worker and a
:class:`~protoedit.sweep.compute.Computer` on it.  A Ray worker is an actor holding a
Computer: the same code on a local Ray instance or on a cluster.  Each Caffe child runs BLAS
on one thread (set in the child's environment, not in ours).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Protocol

from protoedit.caffe.environment import SINGLE_THREADED
from protoedit.caffe.pool import Pool as CaffePool
from protoedit.errors import InvalidArgumentError, ProtoeditError
from protoedit.sweep.compute import Computer, Outcome
from protoedit.sweep.plan import WorkItem

ENGINES = ("local", "ray")
#: Work items in flight per worker: the next one waits at the worker while the driver stores
#: the last one's results, so no worker idles between items.
DEPTH = 2


class RayUnavailableError(ProtoeditError):
    """The ray engine was asked for and Ray is not installed."""


class Pool(Protocol):
    """A set of workers taking work items."""

    capacity: int  # items to keep in flight (``DEPTH`` per worker)

    def submit(self, item: WorkItem, attempt: int) -> None:
        """Queue one attempt at an item."""

    def next(self, timeout: float) -> Outcome | None:
        """The next finished attempt, or None after ``timeout`` seconds."""

    def stop(self) -> None:
        """Abandon the work in flight at once."""

    def close(self) -> None:
        """Release the workers."""


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class LocalPool:
    """``workers`` threads of a :class:`protoedit.caffe.Pool`, each with its own Caffe worker
    and :class:`Computer`."""

    def __init__(self, workers: int, allow_python_layers: bool = False) -> None:
        workers = max(1, workers)
        self.capacity = workers * DEPTH
        names = iter(range(workers))
        self._pool: CaffePool[Computer] = CaffePool(
            workers,
            make_state=lambda session: Computer(f"local:{os.getpid()}:{next(names)}", session),
            close_state=Computer.close,
            allow_python_layers=allow_python_layers,
        )
        self.computers = self._pool.states

    def submit(self, item: WorkItem, attempt: int) -> None:
        self._pool.submit(None, lambda computer: computer.compute(item, attempt))

    def next(self, timeout: float) -> Outcome | None:
        done = self._pool.next(timeout)
        return None if done is None else done[1]

    def stop(self) -> None:
        for computer in self.computers:
            computer.kill()
        self._pool.stop()

    def close(self) -> None:
        self._pool.close()


class SweepActor:
    """The Ray actor: one Computer, kept between items (so its nets stay loaded)."""

    def __init__(self, name: str, allow_python_layers: bool = False) -> None:
        import socket

        self.computer = Computer(
            f"ray:{socket.gethostname()}:{os.getpid()}:{name}",
            allow_python_layers=allow_python_layers,
        )

    def compute(self, item: WorkItem, attempt: int) -> Outcome:
        return self.computer.compute(item, attempt)

    def loads(self) -> int:
        return self.computer.loads

    def close(self) -> None:
        self.computer.close()


def ray_module() -> Any:
    """``import ray``, or a RayUnavailableError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise RayUnavailableError(
            "the ray engine needs Ray, which is not installed: pip install 'protoedit[ray]'"
        ) from None
    return ray


#: Seconds to wait for a Ray cluster's port to accept a connection (Ray itself retries for ever).
CONNECT_TIMEOUT = 5.0


def reach_ray(address: str | None, timeout: float = CONNECT_TIMEOUT) -> None:
    """Refuse a Ray ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``) whose port does not
    accept a connection within ``timeout`` seconds; ``auto``, ``local`` and None pass."""
    import socket

    if not address or address in ("auto", "local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # Ray's own forms; it says what is wrong with them
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout).close()
    except OSError as exc:
        why = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise InvalidArgumentError(
            f"cannot reach a Ray cluster at {address}: {why} (waited up to {timeout:g} s)",
            "address",
        ) from None


class RayPool:
    """``workers`` Ray actors (1 CPU each) on the instance at ``address`` (None: a local
    instance started here, or the one this process already joined)."""

    def __init__(
        self,
        workers: int | None,
        address: str | None = None,
        runtime_env: dict[str, Any] | None = None,
        *,
        allow_python_layers: bool = False,
    ) -> None:
        ray = self._ray = ray_module()
        self._allow_python_layers = allow_python_layers
        self._owned = False
        if not ray.is_initialized():
            level = os.environ.get("GLOG_minloglevel", "2")  # noqa: SIM112 - glog's own name
            env: dict[str, Any] = {"env_vars": {"GLOG_minloglevel": level, **SINGLE_THREADED}}
            env.update(runtime_env or {})
            options: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": "WARNING",
                "runtime_env": env,
            }
            if address:
                options["address"] = address
            else:
                options["num_cpus"] = workers or default_workers()
            ray.init(**options)
            self._owned = True
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.capacity = workers * DEPTH
        self._actor_class = ray.remote(num_cpus=1)(SweepActor)
        self._made = 0
        self._actors = [self._new_actor() for _ in range(workers)]
        self._load = [0] * workers  # calls in flight per actor (Ray runs them in order)
        self._running: dict[Any, tuple[int, Any, WorkItem, int]] = {}
        self._waiting: list[tuple[WorkItem, int]] = []

    def _new_actor(self) -> Any:
        self._made += 1
        return self._actor_class.remote(str(self._made), self._allow_python_layers)

    def submit(self, item: WorkItem, attempt: int) -> None:
        self._waiting.append((item, attempt))
        self._dispatch()

    def _dispatch(self) -> None:
        while self._waiting:
            index = min(range(len(self._actors)), key=self._load.__getitem__)
            if self._load[index] >= DEPTH:
                return
            item, attempt = self._waiting.pop(0)
            actor = self._actors[index]
            self._load[index] += 1
            self._running[actor.compute.remote(item, attempt)] = (index, actor, item, attempt)

    def next(self, timeout: float) -> Outcome | None:
        ray = self._ray
        if not self._running:
            return None
        ready, _ = ray.wait(list(self._running), num_returns=1, timeout=timeout)
        if not ready:
            return None
        index, actor, item, attempt = self._running.pop(ready[0])
        current = self._actors[index] is actor
        if current:
            self._load[index] -= 1
        try:
            outcome: Outcome = ray.get(ready[0])
        except ray.exceptions.RayActorError as exc:  # the actor's process died
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "died"
            outcome = Outcome(item, attempt, "ray", error=f"the Ray actor died: {reason}")
            if current:  # replace it once (its other calls fail the same way)
                self._actors[index], self._load[index] = self._new_actor(), 0
        except ray.exceptions.RayError as exc:
            outcome = Outcome(item, attempt, "ray", error=f"Ray failed: {exc}")
        self._dispatch()
        return outcome

    def stop(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors, self._running, self._waiting = [], {}, []
        self.close()

    def close(self) -> None:
        for actor in self._actors:
            with contextlib.suppress(Exception):  # a dead actor has nothing left to close
                self._ray.get(actor.close.remote(), timeout=30)
            self._ray.kill(actor)
        self._actors, self._running = [], {}
        if self._owned:
            self._ray.shutdown()


def make_pool(
    engine: str,
    workers: int | None,
    address: str | None = None,
    *,
    allow_python_layers: bool = False,
) -> Pool:
    """The pool for ``engine`` (``local`` or ``ray``); its Caffe workers run nets with Python
    layers only with ``allow_python_layers``."""
    if engine == "local":
        if address:
            raise InvalidArgumentError("an address is for the ray engine only", "address")
        return LocalPool(workers or default_workers(), allow_python_layers)
    if engine == "ray":
        return RayPool(workers, address, allow_python_layers=allow_python_layers)
    raise ProtoeditError(f"unknown engine {engine!r} (one of {', '.join(ENGINES)})")
