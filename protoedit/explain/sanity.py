"""The model-randomisation sanity check of Adebayo et al. 2018, cascading: the layers with
weights (convolutions, inner products) are randomised one after another from the top, and
after each the saliency maps of the same images are compared with the originals by
Spearman's rank correlation.

A method whose maps stay alike once the ``top`` layers are random (the mean correlation of
that step and every later one, the cascade going on downwards, at least ``threshold``) does
not explain what the net learnt there: it is flagged insensitive (guided backpropagation is
the case the paper found).  The mean over the later steps keeps one lucky draw from
deciding.  Randomised weights are drawn, seeded, from a
normal distribution with each blob's own standard deviation; the trained values are put back
afterwards, also on failure.  A map that is constant after randomising (a Grad-CAM map
rectified to zero) keeps no ranking of the original: its correlation counts as 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from protoedit.errors import InputError
from protoedit.explain.inputs import InputSource
from protoedit.explain.saliency_maps import Saliency
from protoedit.explain.session import CaffeSession
from protoedit.net.layers import STATISTICS
from protoedit.rewrites.add_loss import HEAD_PREFIX

#: The paper's reading: below this the maps have changed.
DEFAULT_THRESHOLD = 0.5


class Method(Protocol):
    """What the check needs of a method object."""

    @property
    def name(self) -> str: ...

    def attribute(self, image: InputSource) -> Saliency: ...

    def session(self) -> CaffeSession: ...


@dataclass
class SanityStep:
    """The maps once ``randomised`` (top first, cumulative) are random: the mean rank
    correlation with the originals over the images, and each image's."""

    randomised: list[str]
    correlation: float
    per_image: list[float] = field(default_factory=list)


@dataclass
class SanityReport:
    """The cascade for one method; :attr:`insensitive` is the verdict."""

    method: str
    steps: list[SanityStep]
    top: int
    threshold: float = DEFAULT_THRESHOLD

    @property
    def verdict_steps(self) -> list[SanityStep]:
        """The steps the verdict reads: from the one where the ``top`` layers are random."""
        return self.steps[min(self.top, len(self.steps)) - 1 :]

    @property
    def correlation(self) -> float:
        """The mean correlation over :attr:`verdict_steps`."""
        return float(np.mean([step.correlation for step in self.verdict_steps]))

    @property
    def insensitive(self) -> bool:
        """Whether the maps stay alike with the top layers random (the method fails)."""
        return self.correlation >= self.threshold

    def lines(self) -> list[str]:
        """One line per step, then the verdict."""
        out = [
            f"randomised {step.randomised[-1]} (and {len(step.randomised) - 1} above): rank "
            f"correlation {step.correlation:.3f}"
            if len(step.randomised) > 1
            else f"randomised {step.randomised[0]}: rank correlation {step.correlation:.3f}"
            for step in self.steps
        ]
        layers = _named(self.verdict_steps[0].randomised)
        mean = f"mean rank correlation {self.correlation:.3f} from there down"
        if self.insensitive:
            out.append(
                f"{self.method} is INSENSITIVE to the weights: with {layers} random its maps "
                f"stay alike ({mean} >= {self.threshold:g})"
            )
        else:
            out.append(
                f"{self.method} passes: with {layers} random its maps change "
                f"({mean} < {self.threshold:g})"
            )
        return out


def ranks(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Ranks from 0, ties sharing their mean rank (Spearman's convention)."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(flat, kind="stable")
    _, first, inverse, counts = np.unique(
        flat[order], return_index=True, return_inverse=True, return_counts=True
    )
    mean_rank = first + (counts - 1) / 2.0
    out = np.empty_like(flat)
    out[order] = mean_rank[inverse]
    return out


def rank_correlation(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Spearman's rank correlation; 0 when either side is constant (no ranking to keep)."""
    ra, rb = ranks(a), ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    norm = float(np.sqrt((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / norm) if norm > 0 else 0.0


def parameter_layers(session: CaffeSession) -> list[str]:
    """The layers the cascade randomises, top first: those with weights (convolutions, inner
    products: the catalogue's ``weight`` role), the head protoedit added left out."""
    params: dict[str, dict[str, Any]] = session.info["params"]
    names = [
        name
        for name, roles in params.items()
        if "weight" in roles and not name.startswith(HEAD_PREFIX)
    ]
    return names[::-1]


def _named(layers: list[str]) -> str:
    """``a, b, c`` for a few layers; the count, the first and the last for many."""
    if len(layers) <= 4:
        return ", ".join(layers)
    return f"the top {len(layers)} layers ({layers[0]} ... {layers[-1]})"


def sanity(
    method: Method,
    images: Sequence[InputSource],
    *,
    layers: Sequence[str] | None = None,
    top: int | None = None,
    seed: int = 0,
    threshold: float = DEFAULT_THRESHOLD,
) -> SanityReport:
    """Randomise ``layers`` (default: every layer with weights, top first; their learnt
    blobs, never BatchNorm's statistics) one after another and compare ``method``'s maps of
    ``images`` with the originals after each.  The verdict reads the step where ``top``
    layers (default: half of them, rounded up) are random."""
    if not images:
        raise InputError("the sanity check needs at least one image")
    session = method.session()
    order = list(layers) if layers is not None else parameter_layers(session)
    known = set(session.info["params"])
    unknown = [name for name in order if name not in known]
    if unknown or not order:
        raise InputError(
            f"no layer with parameters named {', '.join(map(repr, unknown))}"
            if unknown
            else "the net has no layer with parameters to randomise"
        )
    top = (len(order) + 1) // 2 if top is None else top
    if not 1 <= top <= len(order):
        raise InputError(f"top must count 1 to {len(order)} layers, not {top}")
    learnt = {
        name: [role for role in session.info["params"][name] if role not in STATISTICS]
        for name in order
    }
    originals = session.get_params(learnt)
    rng = np.random.default_rng(seed)
    before = [method.attribute(image).map for image in images]
    steps: list[SanityStep] = []
    try:
        for index, name in enumerate(order):
            session.set_params(
                {
                    name: {
                        role: rng.normal(0.0, float(value.std()), value.shape)
                        for role, value in originals[name].items()
                    }
                }
            )
            after = [method.attribute(image).map for image in images]
            each = [rank_correlation(a, b) for a, b in zip(before, after, strict=True)]
            steps.append(SanityStep(order[: index + 1], float(np.mean(each)), each))
    finally:
        session.set_params(originals)
    return SanityReport(method.name, steps, top, threshold)
