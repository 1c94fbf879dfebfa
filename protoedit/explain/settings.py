"""The settings of activation maximisation: the ascent and its regularisers, the presets of
Yosinski et al. (2015), and the typed per-request settings the Caffe worker steps with."""

from __future__ import annotations

from dataclasses import dataclass, replace

from protoedit.arguments import number, whole


@dataclass(frozen=True)
class Settings:
    """The ascent and its regularisers.  ``step``, ``jitter`` and ``init_std`` are in pixels
    (0-255 units, whatever the preprocessing's scale): each step moves a pixel by ``step``
    times its gradient over the image's mean |gradient|, capped at ``cap`` times ``step``;
    the step falls linearly to ``step_end``.  Percentiles are 0-100; ``blur_every`` 0 never
    blurs.  ``octaves`` image sizes, coarse to fine, ``octave_scale`` apart.  ``tile`` > 1
    optimises a periodic tile of 1/``tile`` the size for ``tile_fraction`` of the steps, then
    the whole image repeated from it (4x cheaper steps for a channel mean).  None: chosen
    from the image size by :meth:`resolved`."""

    steps: int = 200
    step: float | None = None
    step_end: float | None = None
    cap: float = 2.0
    decay: float = 0.0
    blur_radius: float = 0.0
    blur_every: int = 4
    norm_percentile: float = 0.0
    contribution_percentile: float = 0.0
    jitter: int = 0
    octaves: int = 1
    octave_scale: float = 1.5
    tile: int | None = None
    tile_fraction: float = 0.8
    init_std: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse a value out of range (an :class:`InvalidArgumentError` naming the field)."""
        for name in ("steps", "octaves"):
            whole(getattr(self, name), name, 1)
        for name in ("blur_every", "jitter", "seed"):
            whole(getattr(self, name), name, 0)
        if self.tile is not None:
            whole(self.tile, "tile", 1)
        for name in ("step", "step_end"):
            if getattr(self, name) is not None:
                number(getattr(self, name), name, low=0.0, above=True)
        number(self.cap, "cap", low=0.0, above=True)
        number(self.octave_scale, "octave_scale", low=1.0, above=True)
        for name in ("blur_radius", "init_std"):
            number(getattr(self, name), name, low=0.0)
        number(self.decay, "decay", low=0.0, high=1.0)
        for name in ("norm_percentile", "contribution_percentile"):
            number(getattr(self, name), name, low=0.0, high=100.0)
        number(self.tile_fraction, "tile_fraction", low=0.0, high=1.0)

    def resolved(self, height: int, width: int) -> Settings:
        """Fill the size-dependent defaults.  A tiny image (8x8 digits) has few pixels, each
        of which must move further per step; a large one is tiled in two."""
        small = min(height, width) < 32
        step = self.step if self.step is not None else (24.0 if small else 3.0)
        end = self.step_end if self.step_end is not None else step / 3
        tile = self.tile if self.tile is not None else (2 if min(height, width) >= 64 else 1)
        return replace(self, step=step, step_end=end, tile=tile)

    def rate(self, step: int, count: int) -> float:
        """The step (pixels) for steps ``step`` .. ``step + count``: linear from ``step`` to
        ``step_end`` over the run, taken at the chunk's middle."""
        first = self.step if self.step is not None else 1.0
        end = self.step_end if self.step_end is not None else first
        middle = (step + count / 2) / max(1, self.steps)
        return first + (end - first) * min(1.0, middle)


#: The four hyperparameter sets of Yosinski et al. (2015), "Understanding Neural Networks
#: Through Deep Visualization", Table: decay, blur radius, blur every, small-norm percentile,
#: small-contribution percentile, iterations (single scale, as in the paper).
PRESETS: dict[str, Settings] = {
    "default": Settings(),
    "yosinski1": Settings(
        decay=0.0, blur_radius=0.5, blur_every=4, norm_percentile=50,
        contribution_percentile=0, steps=500, tile=1,
    ),
    "yosinski2": Settings(
        decay=0.3, blur_radius=0.0, blur_every=0, norm_percentile=20,
        contribution_percentile=0, steps=750, tile=1,
    ),
    "yosinski3": Settings(
        decay=1e-4, blur_radius=1.0, blur_every=4, norm_percentile=0,
        contribution_percentile=0, steps=1000, tile=1,
    ),
    "yosinski4": Settings(
        decay=0.0, blur_radius=0.5, blur_every=4, norm_percentile=0,
        contribution_percentile=90, steps=1000, tile=1,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class StepSettings:
    """What the worker needs for a chunk of ascent steps, in blob units: the step, the
    regularisers, and each input channel's valid range (``low``/``high``: pixels 0 and 255)."""

    step: float
    decay: float
    cap: float
    blur_radius: float
    blur_every: int
    norm_percentile: float
    contribution_percentile: float
    jitter: int
    low: tuple[float, ...]
    high: tuple[float, ...]

    @classmethod
    def of(
        cls, settings: Settings, rate: float, low: list[float], high: list[float]
    ) -> StepSettings:
        """The worker's settings for ``settings`` at step size ``rate`` (blob units)."""
        return cls(
            step=rate,
            decay=settings.decay,
            cap=settings.cap,
            blur_radius=settings.blur_radius,
            blur_every=settings.blur_every,
            norm_percentile=settings.norm_percentile,
            contribution_percentile=settings.contribution_percentile,
            jitter=settings.jitter,
            low=tuple(low),
            high=tuple(high),
        )
