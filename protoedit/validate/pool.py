"""Validation requests on a pool of warm Caffe workers (:class:`protoedit.caffe.Pool`).

A worker imports Caffe once and validates net after net.  One that Caffe aborts, that runs
past the timeout or that dies for its memory limit takes only its current request with it:
its session starts a fresh worker for the next one.  The outcome of a request is raw (the
worker's reply, with the first attempt when it ran again with its fallback);
:mod:`protoedit.validate.runner` turns it into a report.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from protoedit.caffe.gate import PythonLayersRefused
from protoedit.caffe.pool import Pool
from protoedit.caffe.session import Session
from protoedit.caffe.worker import Reply

HANDLER = "protoedit.validate.child"


@dataclass
class Outcome:
    """What became of one request: the worker's reply, or the gate's refusal."""

    reply: Reply
    #: The first attempt, when its worker died and the request ran again with its fallback.
    retried: Reply | None = None
    #: The verdict at the reduced extent, when it failed and the net ran again at the declared.
    rechecked: dict[str, Any] | None = None
    recheck_seconds: float = 0.0
    refused: PythonLayersRefused | None = None

    @property
    def result(self) -> dict[str, Any] | None:
        """The child's result fields (None when it gave none)."""
        return self.reply.answer

    @property
    def stage(self) -> str:
        """The last stage the child reached ("start" before any)."""
        stages = self.reply.noted("stage")
        return str(stages[-1]) if stages else "start"

    @property
    def plan(self) -> dict[str, Any]:
        """How the child meant to run the net (``param_gradients``; ``fallback``: the request
        changes to run again with should the worker die), known even if it died."""
        plans = self.reply.noted("plan")
        return dict(plans[-1]) if plans else {}

    @property
    def data_layers(self) -> list[str]:
        """The net's layers that read files (noted before Caffe loads it)."""
        scans = self.reply.noted("scan")
        return list(scans[-1].get("data_layers", [])) if scans else []

    @property
    def seconds(self) -> float:
        """The time the request took, both attempts counted."""
        first = self.retried.seconds if self.retried is not None else 0.0
        return round(self.reply.seconds + first + self.recheck_seconds, 3)


def run_one(
    session: Session, request: dict[str, Any], *, timeout: float, allow_python_layers: bool
) -> Outcome:
    """Validate one net on ``session`` (``timeout``: seconds from when it is sent); run it
    again with its plan's fallback (on a fresh worker) should the worker die."""

    def call(fields: dict[str, Any]) -> Reply:
        return session.call(
            HANDLER,
            "validate",
            fields,
            request_timeout=timeout,
            allow_python_layers=allow_python_layers,
        )

    try:
        outcome = Outcome(call(request))
    except PythonLayersRefused as refused:
        return Outcome(Reply(), refused=refused)
    fallback = outcome.plan.get("fallback")
    if outcome.result is None and outcome.reply.died and fallback:
        outcome = Outcome(call({**request, **fallback}), retried=outcome.reply)
    first = outcome.result
    if (
        first is not None
        and first.get("status") == "failed"
        and not first.get("cause")
        and _reduced(first)
    ):
        # A verdict against the net (a zero or non-finite gradient) may belong to the smaller
        # extent only (a dead ReLU path at 15x15 that 227x227 does not have): it stands only
        # if the declared extent gives it too.  A known cause (no loss, no force_backward,
        # zero weights) does not depend on the extent.
        again = Outcome(call({**request, "extent": "declared"}), retried=outcome.retried)
        again.rechecked, again.recheck_seconds = first, outcome.reply.seconds
        outcome = again
    return outcome


def _reduced(result: dict[str, Any]) -> bool:
    """True when the net ran at an extent other than the declared one."""
    return bool(result.get("extent")) and result.get("extent") != result.get("declared_extent")


def run_requests(
    requests: Sequence[dict[str, Any]],
    *,
    jobs: int,
    memory_limit: int,
    timeout: float,
    allow_python_layers: bool,
    session: Session | None = None,
) -> Iterator[tuple[int, Outcome]]:
    """Run ``requests`` on ``jobs`` workers (or one after the other on ``session``); yield
    ``(index, outcome)`` as each finishes.  ``timeout`` bounds each request from when it is
    sent to a worker that is up.

    Raises :class:`~protoedit.errors.CaffeUnavailableError` when Caffe cannot be imported.
    """
    run = partial(run_one, timeout=timeout, allow_python_layers=allow_python_layers)
    if session is not None:
        for index, request in enumerate(requests):
            yield index, run(session, request)
        return
    pool: Pool[Session] = Pool(
        min(jobs, len(requests)), memory_limit=memory_limit, preload=(HANDLER,)
    )
    finished = False
    try:
        yield from pool.map_unordered(
            (index, partial(run, request=request)) for index, request in enumerate(requests)
        )
        finished = True
    finally:
        pool.close() if finished else pool.stop()
