"""Run a sweep: expand the plan, skip what the store holds, dispatch the rest to a pool,
store each batch the moment it is done, retry a failed batch once, and count."""

from __future__ import annotations

import os
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from protoedit.progress import progress_bar
from protoedit.sweep.atlas import keep_net
from protoedit.sweep.compute import Outcome
from protoedit.sweep.engines import Pool, make_pool, ray_module, reach_ray
from protoedit.sweep.plan import Plan, WorkItem, check_plan_weights, expand, unit_count, work_items
from protoedit.sweep.store import Store

#: Attempts per batch: the first and one retry.
ATTEMPTS = 2


@dataclass
class Summary:
    """What a sweep did; ``failed`` counts units given up after the retry."""

    sweep: str
    units: int = 0  # in the plan
    already: int = 0  # stored before this sweep started
    computed: int = 0  # stored by this sweep
    failed: int = 0
    failed_attempts: int = 0  # failed attempts recorded (a retried success counts here too)
    retried: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    reasons: list[str] = field(default_factory=list)

    @property
    def units_per_minute(self) -> float:
        """Units stored by this sweep per minute of its wall time."""
        return 60.0 * self.computed / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        """The summary as printed by the command line."""
        head = (
            f"{self.units} units: {self.already} already stored, {self.computed} computed "
            f"now ({self.units_per_minute:.1f} units/min over {self.seconds:.1f} s), "
            f"{self.failed} failed"
        )
        lines = [head]
        if self.failed_attempts:
            lines.append(f"{self.failed_attempts} failed attempts, {self.retried} retried")
            lines += [f"  {reason}" for reason in self.reasons[:10]]
        if self.interrupted:
            missing = self.units - self.already - self.computed
            lines.append(
                f"interrupted: {missing} units not done; run the same sweep again to finish them"
            )
        return lines


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep, after the pool stopped; the store is consistent."""

    def __init__(self, summary: Summary) -> None:
        super().__init__("interrupted")
        self.summary = summary


def run_sweep(
    plan: Plan,
    store: str | os.PathLike[str],
    *,
    engine: str = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: bool | None = None,
    pool: Pool | None = None,
    allow_python_layers: bool = False,
    strict_weights: bool = False,
) -> Summary:
    """Compute every unit of ``plan`` missing from the store at ``store``.

    Nets with Python layers (which import code) run only with ``allow_python_layers``.
    Each model's weights are checked once, before the store is touched
    (:func:`~protoedit.sweep.plan.check_plan_weights`; with ``strict_weights`` a layer missing
    is an error, else a ``WeightsWarning``).

    ``pool``: workers to use instead of making them from ``engine`` (they stay open).
    Raises :class:`SweepInterrupted` (a ``KeyboardInterrupt``) on Ctrl-C, after stopping.
    """
    jobs = expand(plan)
    own = pool is None
    if engine == "ray" and own:
        ray_module()  # a missing Ray or an unreachable cluster: before the store is touched
        reach_ray(address)
    check_plan_weights(plan, strict=strict_weights)  # once, before any batch or the store
    if engine == "ray" and own:
        pool = make_pool(engine, workers, address, allow_python_layers=allow_python_layers)
    summary = Summary(sweep=uuid.uuid4().hex[:12], units=unit_count(jobs))
    try:
        with Store(store) as db:
            db.remove_stale_files()
            for job in jobs:
                db.add_config(job.config, job.model.name, job.layer, job.description)
                keep_net(store, job.model.net, job.description["net_sha256"])  # for the atlas
            done = db.done([job.config for job in jobs])
            summary.already = sum(1 for j in jobs for c in j.channels if (j.config, c) in done)
            items = work_items(jobs, done)
            if items:
                pool = pool or make_pool(
                    engine, workers, address, allow_python_layers=allow_python_layers
                )
                try:
                    _run_items(pool, items, db, summary, done, progress)
                except SweepInterrupted:
                    own = False  # stopped already
                    raise
    finally:
        if own and pool is not None:
            pool.close()
    return summary


def _run_items(
    pool: Pool,
    items: list[WorkItem],
    db: Store,
    summary: Summary,
    done: set[tuple[str, int]],
    progress: bool | None,
) -> None:
    """Run ``items`` on ``pool`` with a progress bar; on Ctrl-C stop the pool and raise
    :class:`SweepInterrupted`."""
    started = time.perf_counter()
    bar = progress_bar(
        summary.units - summary.already,
        unit="unit",
        enabled=progress,
        desc="sweep",
        smoothing=0.1,
        bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} units "
        "[{elapsed}, ETA {remaining}{postfix}]",
    )
    try:
        _dispatch(pool, items, db, summary, bar, done)
    except KeyboardInterrupt:
        summary.interrupted = True
        pool.stop()
        raise SweepInterrupted(summary) from None
    finally:
        summary.seconds = time.perf_counter() - started
        bar.close()


def _dispatch(
    pool: Pool,
    items: list[WorkItem],
    db: Store,
    summary: Summary,
    bar: Any,
    done: set[tuple[str, int]],
) -> None:
    pending: deque[tuple[WorkItem, int]] = deque((item, 1) for item in items)
    in_flight = 0
    started = time.perf_counter()
    while pending or in_flight:
        while pending and in_flight < pool.capacity:
            pool.submit(*pending.popleft())
            in_flight += 1
        outcome = pool.next(timeout=0.5)
        if outcome is None:
            continue
        in_flight -= 1
        if outcome.error is not None or outcome.outputs is None:
            _failed(outcome, pending, db, summary)
            continue
        job = outcome.item.job
        fresh = [o for o in outcome.outputs if (job.config, o.channel) not in done]
        stored = db.add_results(
            job.config,
            job.layer,
            fresh,
            seconds=outcome.seconds,
            worker=outcome.worker,
            sweep=summary.sweep,
            versions=outcome.versions,
        )
        summary.computed += len(stored)
        bar.update(len(fresh))
        minutes = (time.perf_counter() - started) / 60
        bar.set_postfix_str(f"{summary.computed / minutes:.1f} units/min" if minutes else "")


def _failed(
    outcome: Outcome, pending: deque[tuple[WorkItem, int]], db: Store, summary: Summary
) -> None:
    item = outcome.item
    reason = outcome.error or "no result"
    db.add_failure(
        item.job.config, item.channels, outcome.attempt, reason, outcome.worker, summary.sweep
    )
    summary.failed_attempts += 1
    where = f"{item.job.model.name} {item.job.layer} {item.channels[0]}-{item.channels[-1]}"
    summary.reasons.append(f"{where} (attempt {outcome.attempt}): {reason}")
    if outcome.attempt < ATTEMPTS:
        summary.retried += 1
        pending.append((item, outcome.attempt + 1))
    else:
        summary.failed += len(item.channels)
