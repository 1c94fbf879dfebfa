"""Building a large tree without the garbage collector rescanning it: :func:`bulk_allocation`.

A tree holds no reference cycles, yet while it is built the cyclic collector would scan its
hundreds of thousands of new objects again and again (a large share of the load time of a
large file).  Pausing it is a process-wide act, so a library call never does it: only a
program that owns its process (the ``protoedit`` command) opts in with :func:`own_process`.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_process_owned = False


def own_process(owned: bool = True) -> bool:
    """Say whether this process belongs to protoedit (the CLI says so while a command runs):
    loads may then pause the collector while they build.  In a library caller's process the
    collector is never touched.  Returns the previous setting, to restore it."""
    global _process_owned
    previous, _process_owned = _process_owned, owned
    return previous


@contextmanager
def bulk_allocation() -> Iterator[None]:
    """Build many long-lived objects at once, leaving the caller's collector as it was found.

    On the way in, the young generations are collected, as the collector would do at the next
    allocation, so the caller's young garbage goes now and its survivors are old; then the
    collector pauses.  On the way out the objects made meanwhile (the only young ones) go
    straight to the oldest generation unscanned (``freeze`` then ``unfreeze``), and the
    collector runs again.  Enabled or not, frozen objects and thresholds end as they were;
    when the caller disabled the collector or froze objects itself, nothing is touched.
    Only in a process protoedit owns (:func:`own_process`); elsewhere this does nothing.
    """
    if not _process_owned or not gc.isenabled() or gc.get_freeze_count():
        yield
        return
    gc.collect(1)
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        gc.enable()
