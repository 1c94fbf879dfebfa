"""The worker side of a sweep: compute work items, keeping each net loaded between them.

A :class:`Computer` belongs to one worker (a thread of the local engine, a Ray actor) and
owns one warm Caffe worker (a :class:`protoedit.caffe.Session`).  It keeps the visualisation
net of the last (model, layer) pairs it has seen loaded there (a :class:`CaffeSession` each),
so Caffe imports once per worker and each net loads once, not once per batch.  A net whose
worker died (Caffe aborted, the process was killed) is dropped, and the next item of that
layer loads it again in a fresh worker.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from protoedit.caffe.session import Session
from protoedit.errors import ProtoeditError
from protoedit.explain.maximisation import visualize
from protoedit.explain.preprocess import blob_to_image
from protoedit.explain.session import CaffeSession
from protoedit.explain.vis_net import visualization_net
from protoedit.sweep.plan import LayerJob, WorkItem
from protoedit.sweep.store import UnitOutput

#: Nets kept loaded per worker (each holds its weights in the worker's Caffe process).
KEEP_SESSIONS = 2


@dataclass
class Outcome:
    """What became of one attempt at a work item: outputs, or the reason it failed."""

    item: WorkItem
    attempt: int
    worker: str
    seconds: float = 0.0
    outputs: list[UnitOutput] | None = None
    error: str | None = None
    versions: tuple[str, str] = ("", "")


def versions() -> tuple[str, str]:
    """protoedit's version and the Caffe build's, as seen by this worker."""
    from importlib.metadata import PackageNotFoundError, version

    from protoedit.caffe.build import build_key

    try:
        mine = version("protoedit")
    except PackageNotFoundError:  # pragma: no cover - an uninstalled source tree
        mine = "unknown"
    return mine, build_key()


class Computer:
    """Computes work items for one worker; not thread-safe (one per worker)."""

    def __init__(
        self,
        name: str | None = None,
        session: Session | None = None,
        *,
        allow_python_layers: bool = False,
    ) -> None:
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._own = session is None
        self.session = (
            session if session is not None else Session(allow_python_layers=allow_python_layers)
        )
        self._sessions: OrderedDict[tuple[str, str, str], CaffeSession] = OrderedDict()
        self._lock = threading.Lock()
        self._versions = versions()
        self.loads = 0  # nets loaded so far (for tests and the bench)

    def _session(self, job: LayerJob) -> CaffeSession:
        key = (job.model.net, job.model.weights, job.layer)
        with self._lock:
            session = self._sessions.get(key)
            if session is not None and session.alive:
                self._sessions.move_to_end(key)
                return session
            self._sessions.pop(key, None)
        doc, _, _ = visualization_net(job.model.net, job.layer, after_inplace=job.after_inplace)
        session = CaffeSession(
            doc.dumps(),
            weights=job.model.weights,
            net_path=job.model.net,
            seed=job.settings.seed,
            session=self.session,
        )
        self.loads += 1
        with self._lock:
            self._sessions[key] = session
            while len(self._sessions) > KEEP_SESSIONS:
                _, old = self._sessions.popitem(last=False)
                old.close()
        return session

    def _drop(self, job: LayerJob) -> None:
        key = (job.model.net, job.model.weights, job.layer)
        with self._lock:
            session = self._sessions.pop(key, None)
        if session is not None:
            session.close()

    def compute(self, item: WorkItem, attempt: int = 1) -> Outcome:
        """Visualise the item's units; any error becomes the outcome's reason."""
        started = time.perf_counter()
        outcome = Outcome(item, attempt, self.name, versions=self._versions)
        job = item.job
        try:
            session = self._session(job)
            result = visualize(
                job.model.net,
                weights=job.model.weights,
                target=job.layer,
                objectives=list(item.channels),
                settings=job.settings,
                preprocess=job.model.preprocess,
                batch=len(item.channels),
                after_inplace=job.after_inplace,
                progress=False,
                session=session,
            )
        except ProtoeditError as exc:
            self._drop(job)  # a dead or confused Caffe process: the retry gets a fresh one
            outcome.error = str(exc).splitlines()[0]
        except Exception as exc:  # a worker must report, never die, on a unit's failure
            self._drop(job)
            outcome.error = f"{type(exc).__name__}: {exc}"
        else:
            pre = job.model.preprocess
            outcome.outputs = [
                UnitOutput(
                    channel=channel,
                    array=r.image,
                    picture=blob_to_image(r.image, pre),
                    activation_start=r.start,
                    activation_end=r.end,
                    steps=r.steps,
                    dead_at_start=r.dead_at_start,
                )
                for channel, r in zip(item.channels, result.results, strict=True)
            ]
        outcome.seconds = time.perf_counter() - started
        return outcome

    def kill(self) -> None:
        """Stop the Caffe worker at once (an interrupted sweep); a request in flight in
        another thread then fails, which its caller ignores."""
        self.session.kill()
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:  # a net with Python layers has a worker of its own
            session.kill()

    def close(self) -> None:
        """Unload every net, and stop the worker if it is the computer's own."""
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            session.close()
        if self._own:
            self.session.close()
