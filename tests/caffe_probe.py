"""Handlers the worker-layer tests run in a Caffe child (``protoedit.caffe``): they report on
the child and misbehave on request (abort, hang, allocate, print a fatal line)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from protoedit.caffe.child import Handler, Note, Refused

#: How many times this child imported this module (the worker imports a handler once).
IMPORTS = [os.getpid()]


def _env(request: dict[str, Any], note: Note) -> dict[str, Any]:
    names = request.get("names", [])
    return {"env": {name: os.environ.get(name) for name in names}, "pid": os.getpid()}


def _state(request: dict[str, Any], note: Note) -> dict[str, Any]:
    return {"pid": os.getpid(), "imports": len(IMPORTS), "caffe": "caffe" in sys.modules}


def _sleep(request: dict[str, Any], note: Note) -> dict[str, Any]:
    note("stage", "sleeping")
    time.sleep(float(request["seconds"]))
    return {"slept": request["seconds"]}


def _abort(request: dict[str, Any], note: Note) -> dict[str, Any]:
    note("stage", "aborting")
    if request.get("fatal"):  # what glog prints before a failed CHECK aborts the process
        print(
            "F1207 10:00:00.000000 42 net.cpp:99] Check failed: probe (1 vs. 2)",
            file=sys.stderr,
            flush=True,
        )
    os.abort()


def _allocate(request: dict[str, Any], note: Note) -> dict[str, Any]:
    block = bytearray(int(request["bytes"]))
    return {"allocated": len(block)}


def _refuse(request: dict[str, Any], note: Note) -> dict[str, Any]:
    raise Refused("no, thank you", "input")


def _load(request: dict[str, Any], note: Note) -> dict[str, Any]:
    """Stands for a handler that loads ``net`` (the gate ran before it got here)."""
    return {"loaded": request["net"], "path": list(sys.path[:1])}


HANDLERS: dict[str, Handler] = {
    "env": _env,
    "state": _state,
    "sleep": _sleep,
    "abort": _abort,
    "allocate": _allocate,
    "refuse": _refuse,
    "load": _load,
}
