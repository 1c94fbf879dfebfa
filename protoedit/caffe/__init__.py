"""The one Caffe worker layer: every computation that imports pycaffe runs in a child of it.

- :func:`session` / :class:`Session`: a warm worker that many calls reuse
  (``with protoedit.caffe.session() as s: gradients(..., session=s)``), replaced when it
  dies; ``request_timeout`` bounds each request, :meth:`Session.run_deadline` a whole run;
- :class:`Pool`: threads each owning a session (validate's ``--jobs``, the sweep);
- the gate for Python layers (:class:`PythonLayersRefused` unless
  ``allow_python_layers=True``), Caffe's fatal log line (:class:`FatalLog`), the child's
  environment (BLAS on one thread, set in the child only) and its memory limit;
- :mod:`protoedit.caffe.build`: building and locating pycaffe.

pycaffe itself (the top-level ``caffe``) is imported only in the child, by absolute import;
this package imports nothing heavier than the standard library (no numpy, protobuf or Lark).
"""

from __future__ import annotations

from protoedit.caffe.environment import child_environment
from protoedit.caffe.fatal import FatalLog, fatal_logs, last_fatal
from protoedit.caffe.gate import PythonLayer, PythonLayersRefused, check_python_layers
from protoedit.caffe.pool import Pool
from protoedit.caffe.session import (
    DEFAULT_REQUEST_TIMEOUT,
    CaffeRefused,
    CaffeRunError,
    Session,
    session,
)
from protoedit.caffe.worker import Reply

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT",
    "CaffeRefused",
    "CaffeRunError",
    "FatalLog",
    "Pool",
    "PythonLayer",
    "PythonLayersRefused",
    "Reply",
    "Session",
    "check_python_layers",
    "child_environment",
    "fatal_logs",
    "last_fatal",
    "session",
]
