"""The parent side of explain: one net loaded in a warm Caffe worker for many requests.

A :class:`CaffeSession` writes the net text to a private temporary folder, loads it in a
worker of :mod:`protoedit.caffe` (its own, or a shared :class:`~protoedit.caffe.Session`
given as ``session=``, so that many nets and calls pay one Caffe import) and serves
forward/backward requests (:mod:`protoedit.explain.worker`) until closed.  ``timeout`` bounds
each request.  When the worker dies, the glog fatal line it printed becomes the error.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from protoedit.caffe.gate import mentions_python_layers
from protoedit.caffe.session import DEFAULT_REQUEST_TIMEOUT, CaffeRefused, CaffeRunError, Session
from protoedit.errors import InputError, Location
from protoedit.weights.caffemodel import stored_shapes
from protoedit.weights.errors import WeightsError

DEFAULT_TIMEOUT = DEFAULT_REQUEST_TIMEOUT
_HANDLER = "protoedit.explain.worker"

Array = npt.NDArray[np.float32]

__all__ = ["DEFAULT_TIMEOUT", "CaffeRunError", "CaffeSession"]


class CaffeSession:
    """One net loaded in one Caffe worker; use as a context manager or call :meth:`close`.

    ``timeout`` bounds each request (seconds from when it is sent).  ``session``: a warm
    worker to load the net on (it stays open after :meth:`close`); without one, the net
    gets a worker of its own.  A net with Python layers runs only with
    ``allow_python_layers=True`` (or a ``session`` opened so), always in a worker of its own
    (their modules stay imported).
    """

    def __init__(
        self,
        net_text: str,
        *,
        weights: str | os.PathLike[str] | None = None,
        net_path: str = "<net>",
        seed: int = 0,
        timeout: float = DEFAULT_TIMEOUT,
        allow_python_layers: bool = False,
        session: Session | None = None,
    ) -> None:
        self.net_path = net_path
        self.weights_path = str(weights) if weights is not None else ""
        self.timeout = timeout
        self._closed = False
        stored = None
        if weights is not None:
            stored = stored_shapes(weights)  # raises before any process starts
        allow = allow_python_layers or (session is not None and session.allow_python_layers)
        self._own = session is None or mentions_python_layers(net_text)
        self._session: Session = (
            session if session is not None and not self._own else Session(allow_python_layers=allow)
        )
        self._tmp = Path(tempfile.mkdtemp(prefix="protoedit-explain-"))
        self._pid: int | None = None
        self._net_id: int | None = None
        try:
            net_file = self._tmp / "net.prototxt"
            net_file.write_text(net_text, encoding="utf-8")
            self.info = self._request(
                "load",
                net=str(net_file),
                net_path=net_path,
                weights=str(Path(weights).resolve()) if weights is not None else None,
                stored_shapes=stored,
                seed=seed,
            )
            self._pid = self._session.pid
            self._net_id = self.info["net_id"]
        except BaseException:
            self.close()
            raise

    @property
    def inputs(self) -> dict[str, list[int]]:
        """The net's input blobs and their shapes as loaded."""
        shapes: dict[str, list[int]] = self.info["inputs"]
        return shapes

    @property
    def pid(self) -> int | None:
        """The process id of the worker holding the net."""
        return self._pid if not self._closed else None

    @property
    def alive(self) -> bool:
        """Whether the worker holding the net still runs (a request can be served)."""
        return not self._closed and self._session.pid == self._pid and self._pid is not None

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request on the loaded net and wait for its answer; a refusal raises a
        ProtoeditError."""
        if self._closed:
            raise CaffeRunError("the Caffe session is closed")
        return self._request(op, net_id=self._net_id, worker_pid=self._pid, **fields)

    def _request(self, op: str, worker_pid: int | None = None, **fields: Any) -> dict[str, Any]:
        try:
            return self._session.request(
                _HANDLER, op, request_timeout=self.timeout, worker_pid=worker_pid, **fields
            )
        except CaffeRefused as exc:
            if exc.kind == "weights":
                raise WeightsError(
                    f"the weights do not fit the net: {exc.message}", Location(self.weights_path)
                ) from None
            if exc.kind == "input":
                raise InputError(exc.message, Location(self.net_path)) from None
            if exc.message.startswith("Caffe failed during"):
                raise
            raise CaffeRunError(f"Caffe failed during {op}: {exc.message}") from None
        except CaffeRunError as exc:
            if exc.location is None and exc.message.startswith("Caffe aborted"):
                raise CaffeRunError(exc.message, Location(self.net_path)) from None
            raise

    def run(
        self,
        inputs: Mapping[str, npt.ArrayLike],
        *,
        backward: bool = True,
        blobs: tuple[str, ...] = (),
        param_grads: bool = True,
        param_norms: bool = False,
    ) -> dict[str, Any]:
        """Forward (and backward) once: ``loss``, ``losses``; with backward ``inputs`` (blob ->
        gradient) and, unless ``param_grads`` is false (an input-only loop), ``params`` (layer
        -> role -> gradient); ``blobs``: those blobs' data after forward."""
        arrays = {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in inputs.items()}
        return self.request(
            "run",
            inputs=arrays,
            backward=backward,
            blobs=list(blobs),
            param_grads=param_grads,
            param_norms=param_norms,
        )

    def get_params(
        self, wanted: Mapping[str, list[str]] | None = None
    ) -> dict[str, dict[str, Array]]:
        """Parameter values by layer and role (every parameter when ``wanted`` is None)."""
        params: dict[str, dict[str, Array]] = self.request("get_params", params=wanted)["params"]
        return params

    def set_params(self, params: Mapping[str, Mapping[str, npt.ArrayLike]]) -> None:
        """Overwrite parameter values by layer and role."""
        arrays = {
            layer: {role: np.asarray(a, dtype=np.float32) for role, a in roles.items()}
            for layer, roles in params.items()
        }
        self.request("set_params", params=arrays)

    def ascend(self, x: npt.ArrayLike, **fields: Any) -> dict[str, Any]:
        """Gradient-ascent steps on the input run inside the worker (``explain.ascent``):
        the new image ``x`` and each element's ``activation``."""
        return self.request("ascend", x=np.ascontiguousarray(x, dtype=np.float32), **fields)

    def kill(self) -> None:
        """Kill the worker and its process group now, from any thread (an interrupted run); a
        request in flight then fails with :class:`CaffeRunError`. :meth:`close` still cleans up."""
        if not self._closed:
            self._session.kill()

    def close(self) -> None:
        """Unload the net (stopping the worker if it is the net's own) and clean up."""
        if self._closed:
            return
        loaded = self.alive and self._net_id is not None
        self._closed = True
        if self._own:
            self._session.close()
        elif loaded:
            with contextlib.suppress(CaffeRunError):
                self._session.request(_HANDLER, "unload", net_id=self._net_id, worker_pid=self._pid)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> CaffeSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
