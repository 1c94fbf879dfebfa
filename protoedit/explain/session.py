"""The parent side: a Caffe worker process that holds one net across many requests.

Code importing caffe never runs in the caller's process: Caffe aborts its whole process on a
failed CHECK.  A :class:`CaffeSession` starts ``protoedit.explain.worker``, loads the net text
(written to a private temporary folder the session removes), and serves forward/backward
requests until closed; one-shot calls (``gradients``) open and close one, and iterative ones
(``visualize``) can keep it for every step.  When the worker dies, the glog fatal line it
printed becomes the error message.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from protoedit.errors import CaffeUnavailableError, InputError, Location, ProtoeditError
from protoedit.explain import protocol
from protoedit.explain.weights import WeightsError, read_weights, stored_shapes

DEFAULT_TIMEOUT = 600.0

# glog: "F20261126 11:40:00.123456 12345 net.cpp:123] Check failed: ..." (older: "F1126 ...")
_FATAL = re.compile(r"^F\d{4,8} [\d:.]+\s+\d+ ([^:\s]+:\d+)\] (.*)$", re.MULTILINE)

Array = npt.NDArray[np.float32]


class CaffeRunError(ProtoeditError):
    """Caffe refused or aborted while running a net (the fatal line is in the message)."""


class CaffeSession:
    """One net loaded in one Caffe worker; use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        net_text: str,
        *,
        weights: str | os.PathLike[str] | None = None,
        net_path: str = "<net>",
        seed: int = 0,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.net_path = net_path
        self.weights_path = str(weights) if weights is not None else ""
        self.timeout = timeout
        stored = None
        if weights is not None:
            stored = stored_shapes(read_weights(weights))  # raises before any process starts
        self._tmp = Path(tempfile.mkdtemp(prefix="protoedit-explain-"))
        self._stderr = open(self._tmp / "stderr.log", "w+b")  # noqa: SIM115 - closed in close()
        env = dict(os.environ)
        env.setdefault("GLOG_minloglevel", "2")
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-m", "protoedit.explain.worker"],
            bufsize=0,  # no read-ahead: select() on the pipe must see every unread byte
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            start_new_session=True,
        )
        try:
            ready = self._receive("start")
            if "error" in ready:
                from protoedit.caffe_build import setup_hint

                raise CaffeUnavailableError(
                    f"pycaffe cannot be imported ({ready['error']}); {setup_hint()}"
                )
            net_file = self._tmp / "net.prototxt"
            net_file.write_text(net_text, encoding="utf-8")
            self.info = self.request(
                "load",
                net=str(net_file),
                weights=str(Path(weights).resolve()) if weights is not None else None,
                stored_shapes=stored,
                seed=seed,
            )
        except BaseException:
            self.close()
            raise

    @property
    def inputs(self) -> dict[str, list[int]]:
        """The net's input blobs and their shapes as loaded."""
        shapes: dict[str, list[int]] = self.info["inputs"]
        return shapes

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request and wait for its answer; a refusal raises a ProtoeditError."""
        if self._proc is None or self._proc.stdin is None:
            raise CaffeRunError("the Caffe session is closed")
        with contextlib.suppress(BrokenPipeError):  # a dead worker: _receive explains why
            protocol.send(self._proc.stdin, {"op": op, **fields})
        answer = self._receive(op)
        if "error" in answer:
            kind = answer.get("kind")
            if kind == "weights":
                raise WeightsError(
                    f"the weights do not fit the net: {answer['error']}",
                    Location(self.weights_path),
                )
            if kind == "input":
                raise InputError(answer["error"], Location(self.net_path))
            raise CaffeRunError(f"Caffe failed during {op}: {answer['error']}")
        return answer

    def _receive(self, op: str) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        stream = self._proc.stdout
        ready, _, _ = select.select([stream], [], [], self.timeout)
        if not ready:
            self.close()
            raise CaffeRunError(f"Caffe did not answer within {self.timeout:g} s (during {op})")
        answer = protocol.receive(stream)
        if answer is None:
            raise self._death(op)
        return answer

    def _death(self, op: str) -> ProtoeditError:
        """The error for a worker that died: glog's fatal line, else the signal or exit code."""
        assert self._proc is not None
        code = self._proc.wait()
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", errors="replace")
        self.close()
        fatal = _FATAL.findall(text)
        if fatal:
            where, message = fatal[-1]
            return CaffeRunError(
                f"Caffe aborted during {op}: {message.strip()} ({where})", Location(self.net_path)
            )
        if code < 0:
            return CaffeRunError(
                f"the Caffe process died with {signal.Signals(-code).name} during {op}"
            )
        last = text.strip().splitlines()[-1:] or ["no output"]
        return CaffeRunError(f"the Caffe process exited with code {code} during {op}: {last[0]}")

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
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)

    def close(self) -> None:
        """Stop the worker (killed with its process group if it does not leave) and clean up."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                if proc.stdin is not None and proc.poll() is None:
                    protocol.send(proc.stdin, {"op": "close"})
                    proc.stdin.close()
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if not self._stderr.closed:
            self._stderr.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> CaffeSession:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
