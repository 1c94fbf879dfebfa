"""The child side of the worker layer: import Caffe once, then serve requests until told to
stop.  Runs as ``python -m protoedit.caffe.child CONFIG`` (CONFIG: JSON with the descriptor of
its end of the connection, the memory budget and the handler modules to import first).

Messages are pickled dicts on a :class:`multiprocessing.connection.Connection` (both ends are
protoedit; nothing untrusted is unpickled).  fd 1 is pointed at stderr, so whatever Caffe or a
Python layer prints goes to the log the parent reads when the child dies.

A request names a handler module (``protoedit.validate.child``, ``protoedit.explain.worker``)
and an operation in its ``HANDLERS`` table; a handler takes the request and a ``note``
function (progress the parent keeps even if the child then dies) and returns the answer, or
raises :class:`Refused`.  Caffe aborts the whole process on a failed CHECK: the parent reads
the fatal line from our stderr.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

#: Room for the BLAS buffers mapped on first use, beyond the budget for the net.
_LIBRARY_HEADROOM = 256 * 2**20

Note = Callable[[str, Any], None]
Handler = Callable[[dict[str, Any], Note], dict[str, Any]]


class Refused(Exception):
    """A request that cannot be served; ``kind`` says whose fault (``input``, ``weights``,
    ``internal``...), the message goes back to the parent."""

    def __init__(self, message: str, kind: str = "input") -> None:
        super().__init__(message)
        self.kind = kind


def limit_address_space(budget: int) -> None:
    """Allow ``budget`` bytes of address space beyond what the imports already took.

    Set after the imports, with headroom for the BLAS working buffers that are mapped on
    first use: OpenBLAS hangs instead of failing when those do not fit, and the budget is
    meant for the net, not for Python and its libraries.
    """
    if not budget:
        return
    import resource

    status = Path("/proc/self/status").read_text()
    found = re.search(r"^VmSize:\s+(\d+) kB", status, re.MULTILINE)
    assert found is not None  # Linux reports it for every process
    limit = int(found.group(1)) * 1024 + budget + _LIBRARY_HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _handlers(module: str, cache: dict[str, dict[str, Handler]]) -> dict[str, Handler]:
    """A handler module's table (imported once, its ``warm()`` run on import)."""
    if module not in cache:
        loaded = importlib.import_module(module)
        warm = getattr(loaded, "warm", None)
        if warm is not None:
            warm()
        cache[module] = loaded.HANDLERS
    return cache[module]


def _answer(
    request: dict[str, Any], conn: Connection, cache: dict[str, dict[str, Handler]]
) -> dict[str, Any]:
    """Run one request; the final message to send (``answer``, ``refused`` or ``failed``)."""

    def note(key: str, value: Any) -> None:
        conn.send({"note": (key, value)})

    try:
        module_dir = request.get("module_dir")
        if module_dir and module_dir not in sys.path:
            sys.path.insert(0, module_dir)  # Python layers import their module by name
        table = _handlers(request["handler"], cache)
        op = request["op"]
        if op not in table:
            raise Refused(f"unknown request {op!r}", "internal")
        return {"answer": table[op](request["fields"], note)}
    except Refused as exc:
        return {"refused": str(exc), "kind": exc.kind}
    except MemoryError:
        return {"failed": "MemoryError: an allocation failed", "kind": "memory"}
    except Exception as exc:  # a Python-level failure (bad shapes, a pycaffe error): report it
        return {"failed": f"{type(exc).__name__}: {exc}", "kind": "caffe"}


def serve(conn: Connection, memory_limit: int, preload: list[str]) -> None:
    """Import Caffe (say so, or why not), then answer requests until ``None`` or end of input."""
    try:
        import caffe  # noqa: F401
    except Exception as exc:  # any import failure means the same thing to the user
        conn.send({"unavailable": f"{type(exc).__name__}: {exc}"})
        return
    cache: dict[str, dict[str, Handler]] = {}
    for module in preload:
        _handlers(module, cache)
    limit_address_space(memory_limit)
    conn.send({"ready": os.getpid()})
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        conn.send(_answer(request, conn, cache))


def main(argv: list[str]) -> int:
    """Keep the connection on its own descriptor; everything printed goes to stderr."""
    config = json.loads(argv[0])
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    conn = Connection(int(config["fd"]))
    serve(conn, int(config.get("memory_limit", 0)), list(config.get("preload", [])))
    return 0


if __name__ == "__main__":
    # Run the module's imported copy, so that handlers' ``Refused`` is the class caught here.
    from protoedit.caffe.child import main as child_main

    sys.exit(child_main(sys.argv[1:]))
