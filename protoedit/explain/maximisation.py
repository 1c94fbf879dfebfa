"""Activation maximisation: the input image that most excites each objective, several per batch.

:class:`Visualizer` rewrites the net once (:func:`~protoedit.explain.vis_net.visualization_net`)
and keeps its Caffe worker; :meth:`Visualizer.run` optimises a list of objectives
(:mod:`protoedit.explain.objectives`: units, weighted sums of units, channel directions),
``batch`` at a time.  The steps run in the worker (:mod:`protoedit.explain.ascent`), a chunk
per request, through the octaves and tiling of :mod:`protoedit.explain.schedule`.
:func:`visualize` is one run of one Visualizer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from protoedit.arguments import whole
from protoedit.errors import InputError, InvalidArgumentError
from protoedit.explain.explainer import Explainer, SessionSource, WeightsSource
from protoedit.explain.inputs import NetSource
from protoedit.explain.objectives import (
    AnyObjective,
    Objective,
    Unit,
    as_objective,
    check_objective,
)
from protoedit.explain.preprocess import Preprocess, finite_input
from protoedit.explain.preprocess import load_input as load_image_input
from protoedit.explain.schedule import bounds, resize, schedule, start_batch, tiled
from protoedit.explain.session import DEFAULT_TIMEOUT, CaffeSession
from protoedit.explain.settings import Settings, StepSettings
from protoedit.explain.vis_net import MASK, PRE_MASK, visualization_net
from protoedit.explain.visualization import ObjectiveResult, Visualization
from protoedit.progress import progress_bar

Array = npt.NDArray[np.float32]
StartSource = npt.ArrayLike | str | os.PathLike[str]


@dataclass
class _Plan:
    """One run's image shape, settings resolved for it, octave sizes and steps, value range."""

    shape: tuple[int, ...]
    settings: Settings
    sizes: list[tuple[int, int]]
    counts: list[int]
    tile: int
    low: list[float]
    high: list[float]
    start: Array | None
    positions: bool


class Visualizer(Explainer):
    """``net`` rewritten once into the visualisation net of ``target`` and its worker."""

    def __init__(
        self,
        net: NetSource,
        *,
        weights: WeightsSource,
        target: str,
        settings: Settings | None = None,
        preprocess: Preprocess | None = None,
        batch: int = 16,
        chunk: int = 10,
        after_inplace: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        session: SessionSource | None = None,
        allow_python_layers: bool = False,
        strict_weights: bool = False,
    ) -> None:
        self.settings = settings or Settings()
        doc, head, report = visualization_net(net, target, after_inplace=after_inplace)
        super().__init__(
            doc,
            report,
            weights=weights,
            seed=self.settings.seed,
            timeout=timeout,
            session=session,
            allow_python_layers=allow_python_layers,
            strict_weights=strict_weights,
        )
        self.target = target
        self.head = head
        self.preprocess = preprocess or Preprocess()
        self.batch = whole(batch, "batch", 1)
        self.chunk = whole(chunk, "chunk", 1)

    def _plan(self, objectives: list[AnyObjective], start: StartSource | None) -> _Plan:
        head, pre = self.head, self.preprocess
        shape = self.inputs[head.input]
        if len(shape) != 4:
            raise InputError(f"the input '{head.input}' has shape {list(shape)}, not N x C x H x W")
        settings = self.settings.resolved(int(shape[2]), int(shape[3]))
        positions = any(p is not None for o in objectives for _, _, p in o.terms)
        octaves_ok = head.spatial_ok and not positions
        octaves = max(1, settings.octaves) if octaves_ok else 1  # else the size is fixed
        low, high = bounds(pre, int(shape[1]))
        start_array: Array | None = None
        if start is not None:
            if isinstance(start, str | os.PathLike):
                start_array = load_image_input(start, shape, pre)
            else:
                start_array = finite_input(np.asarray(start, dtype=np.float32), "the start")
            if start_array.ndim == len(shape):
                start_array = start_array[0]
            if tuple(start_array.shape) != tuple(shape[1:]):
                raise InputError(
                    f"the start image has shape {list(start_array.shape)}, the input "
                    f"{list(shape[1:])}"
                )
        tile = settings.tile or 1
        if not octaves_ok or start_array is not None:
            tile = 1  # a fixed size, or a start image to keep as it is
        sizes, counts = schedule(int(shape[2]), int(shape[3]), settings, octaves, tile)
        return _Plan(shape, settings, sizes, counts, tile, low, high, start_array, positions)

    def run(
        self,
        objectives: Sequence[int | Unit | Objective],
        *,
        start: StartSource | None = None,
        progress: bool | None = None,
    ) -> Visualization:
        """Maximise each objective by gradient ascent on the input, ``batch`` per batch.

        ``start``: an image file (pixels), or a ``.npy`` or array holding the blob as fed,
        to begin from instead of noise.  ``progress`` None shows a bar only on a terminal.
        """
        wanted = [as_objective(item) for item in objectives]
        if not wanted:
            raise InputError("no objectives to visualise")
        labels = [objective.label(self.target) for objective in wanted]
        for objective, label in zip(wanted, labels, strict=True):
            check_objective(objective, self.target, self.head.target_channels, self.head.shape)
            if labels.count(label) > 1:  # one image each: the second would overwrite the first
                raise InvalidArgumentError(f"{label} is given twice", "objectives")
        plan = self._plan(wanted, start)
        groups = [wanted[i : i + self.batch] for i in range(0, len(wanted), self.batch)]
        results: list[ObjectiveResult] = []
        bar = progress_bar(
            plan.settings.steps * len(groups), unit="step", enabled=progress, leave=False
        )
        try:
            session = self.session()
            for group in groups:
                bar.set_description(
                    f"objectives {len(results) + 1}-{len(results) + len(group)} of {len(wanted)}"
                )
                results += self._group(session, plan, group, bar)
        finally:
            bar.close()
        return Visualization(
            target=self.target,
            results=results,
            settings=plan.settings,
            preprocess=self.preprocess,
            report=self.report,
        )

    def _group(
        self, session: CaffeSession, plan: _Plan, group: list[AnyObjective], bar: Any
    ) -> list[ObjectiveResult]:
        """One batch through every octave: a chunk of steps per request."""
        head, settings, scale = self.head, plan.settings, abs(self.preprocess.scale)
        x = start_batch(
            plan.start, plan.shape, group, settings, self.preprocess, plan.low, plan.high
        )
        common: dict[str, Any] = {
            "input": head.input,
            "post": head.post,
            "pre": head.pre,
            "mask": MASK,
            "pre_mask": PRE_MASK if head.pre else None,
            "objectives": [o.terms for o in group],
            "mask_shape": (len(group), head.target_channels)
            if not plan.positions
            else (len(group), *(head.shape or ())[1:]),
            "settings": StepSettings.of(settings, settings.rate(0, 0) * scale, plan.low, plan.high),
            "seed": settings.seed,
            "period": _stride(plan.shape, head.shape),
        }
        measured = session.ascend(x, dead=[False] * len(group), start=0, steps=0, **common)
        begin = list(measured["activation"])
        dead_at_start = list(measured["dead"])
        dead = dead_at_start
        step = 0
        if plan.tile > 1:
            x = x[:, :, : plan.sizes[0][0], : plan.sizes[0][1]]
        for phase, ((height, width), count) in enumerate(zip(plan.sizes, plan.counts, strict=True)):
            repeat = plan.tile > 1 and phase == len(plan.sizes) - 1
            x = tiled(x, height, width) if repeat else resize(x, height, width)
            done = 0
            while done < count:
                k = min(self.chunk, count - done)
                rate = settings.rate(step, k) * scale
                common["settings"] = StepSettings.of(settings, rate, plan.low, plan.high)
                periodic = plan.tile > 1 and not repeat  # a tile, repeated afterwards
                answer = session.ascend(
                    x, dead=dead, start=step, steps=k, periodic=periodic, **common
                )
                x, dead = answer["x"], answer["dead"]
                done, step = done + k, step + k
                bar.update(k)
        x = resize(x, int(plan.shape[2]), int(plan.shape[3]))
        final = session.ascend(x, dead=dead, start=step, steps=0, **common)
        return [
            ObjectiveResult(
                objective=objective,
                label=objective.label(self.target),
                image=np.ascontiguousarray(final["x"][n]),
                start=float(begin[n]),
                end=float(final["activation"][n]),
                steps=settings.steps,
                dead_at_start=bool(dead_at_start[n]),
            )
            for n, objective in enumerate(group)
        ]


def _stride(image: tuple[int, ...], target: tuple[int, ...] | None) -> int:
    """How many input pixels one step of the target's grid spans (224 -> 112: 2), so a tile
    rolled by multiples of it keeps its pattern in phase with the net's strides."""
    if target is None or len(target) != 4 or min(target[2:]) < 1:
        return 1
    return max(1, min(int(image[2]) // int(target[2]), int(image[3]) // int(target[3])))


def visualize(
    net: NetSource,
    *,
    weights: WeightsSource,
    target: str,
    objectives: Sequence[int | Unit | Objective] = (0,),
    settings: Settings | None = None,
    preprocess: Preprocess | None = None,
    start: StartSource | None = None,
    batch: int = 16,
    after_inplace: bool = False,
    progress: bool | None = None,
    chunk: int = 10,
    timeout: float = DEFAULT_TIMEOUT,
    session: SessionSource | None = None,
    allow_python_layers: bool = False,
    strict_weights: bool = False,
) -> Visualization:
    """Maximise each of ``objectives`` (channel numbers for their means, :class:`Unit` or
    sums of them) on ``target`` by gradient ascent on the input: one
    :meth:`Visualizer.run`.  ``chunk`` steps run per worker request."""
    with Visualizer(
        net,
        weights=weights,
        target=target,
        settings=settings,
        preprocess=preprocess,
        batch=batch,
        chunk=chunk,
        after_inplace=after_inplace,
        timeout=timeout,
        session=session,
        allow_python_layers=allow_python_layers,
        strict_weights=strict_weights,
    ) as visualizer:
        return visualizer.run(objectives, start=start, progress=progress)
