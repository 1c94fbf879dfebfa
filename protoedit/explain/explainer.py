"""What every explain method object holds: its net rewritten once for a backward pass, the
weights, and the Caffe worker that runs it, opened on first use and reused by every call.

``net_text`` and ``inputs`` (the input blobs' shapes) are all a call needs of the net.
A caller may hand in a ``session``: a warm worker (:class:`protoedit.caffe.Session`, from
``with protoedit.caffe.session() as s:``) that the net is loaded on, so that many objects
and calls pay one Caffe import; or a :class:`~protoedit.explain.session.CaffeSession` already
loaded with :attr:`Explainer.net_text` (shared between objects of one net).  Either stays
open when the object closes.  An object given to another process (pickled)
goes without its worker and opens its own there.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any, Self

from protoedit.arguments import seconds
from protoedit.caffe.session import Session
from protoedit.document import Document
from protoedit.explain.inputs import input_shapes
from protoedit.explain.session import DEFAULT_TIMEOUT, CaffeSession
from protoedit.rewrites.report import RewriteReport
from protoedit.weights.given import check_weights

WeightsSource = str | os.PathLike[str] | None
#: What ``session=`` takes: a warm worker to load the net on, or a session holding the net.
SessionSource = Session | CaffeSession


class Explainer:
    """A rewritten net, its weights and (once used) its Caffe worker; a context manager."""

    def __init__(
        self,
        doc: Document,
        report: RewriteReport,
        *,
        weights: WeightsSource,
        seed: int = 0,
        timeout: float = DEFAULT_TIMEOUT,
        session: SessionSource | None = None,
        allow_python_layers: bool = False,
        phase: str = "TEST",
        strict_weights: bool = False,
    ) -> None:
        self.phase = phase
        self.doc: Document | None = doc
        self.report = report
        self.weights = weights
        self.seed = seed
        self.timeout = seconds(timeout)
        self.allow_python_layers = allow_python_layers
        self.strict_weights = strict_weights
        self._weights_warning: str | None = None  # checked when first needed
        self.net_text = doc.dumps()
        self.net_path = doc.path
        self.inputs = input_shapes(doc)
        self._worker = session if isinstance(session, Session) else None
        self._session = session if isinstance(session, CaffeSession) else None
        self._own = False

    def session(self) -> CaffeSession:
        """The net in a worker: the session given, or the net loaded now (on the warm worker
        given, else in a worker of its own) and kept until :meth:`close`."""
        if self._session is None:
            self.weights_warning()  # the one rule for weights, before any worker starts
            self._session = CaffeSession(
                self.net_text,
                weights=self.weights,
                net_path=self.net_path,
                seed=self.seed,
                timeout=self.timeout,
                allow_python_layers=self.allow_python_layers,
                session=self._worker,
                phase=self.phase,
            )
            self._own = True
        return self._session

    def weights_warning(self) -> str:
        """The weights against the rewritten net by the one rule of :mod:`protoedit.weights`
        (checked once; an error raises): its warning, "" when every layer that learns is
        stored or no weights were given."""
        if self._weights_warning is None:
            given = self.weights
            strict = self.strict_weights
            note = "" if given is None else check_weights(self._net(), given, strict=strict)
            self._weights_warning = note
        return self._weights_warning

    def _net(self) -> Document:
        from protoedit.document import loads

        return self.doc if self.doc is not None else loads(self.net_text, path=self.net_path)

    def warnings(self) -> list[str]:
        """What the weights leave at their fillers: the one summarised warning."""
        note = self.weights_warning()
        out = [note] if note else []
        if self.weights is None:
            out.append("no weights given: every parameter has its filler's initial value")
        return out

    def close(self) -> None:
        """Unload the net this object loaded (a worker or session handed in stays open)."""
        session, own = self._session, self._own
        self._session, self._own = None, False
        if session is not None and own:
            session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self.interrupt()
        self.close()

    def interrupt(self) -> None:
        """Ctrl-C: kill this object's own worker now (a request in flight may run for
        seconds, and closing politely would wait for it); a worker handed in stays."""
        if self._session is not None and self._own:
            self._session.kill()

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the worker (a copy in another process opens its own) and without
        the Document (``doc`` is None there; ``net_text`` is the net)."""
        state = dict(self.__dict__)
        state["_session"], state["_own"], state["doc"] = None, False, None
        state["_worker"] = None
        return state
