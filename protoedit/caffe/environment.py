"""The environment of a Caffe child: set in the child's own ``env``, never in the caller's
``os.environ`` (library calls leave the caller's process as they found it)."""

from __future__ import annotations

import os
from collections.abc import Sequence

#: BLAS and OpenMP on one thread: OpenBLAS sizes its working buffers by thread count (so the
#: memory the libraries take is the same on any machine), and a pool's workers, one per core,
#: would otherwise compete with each other's BLAS threads.
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def child_environment(pythonpath: Sequence[str] = ()) -> dict[str, str]:
    """The child's environment: the caller's, with Caffe's log down to errors (the fatal line
    is read from it), BLAS on one thread and ``pythonpath`` ahead of ``PYTHONPATH``."""
    env = dict(os.environ)
    env.setdefault("GLOG_minloglevel", "2")
    env.update(SINGLE_THREADED)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([*pythonpath, *filter(None, [env.get("PYTHONPATH")])])
    return env
