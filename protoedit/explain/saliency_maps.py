"""Saliency maps of one image: which input pixels the head's value ``f`` depends on.

``f`` is the loss head of the aux net (a class logit, a channel, a unit; its weight included),
for one image.  Three methods, each one Caffe worker and few requests:

- ``gradient`` (Simonyan et al. 2013): ``max over channels of |d f / d x|``.
- ``smoothgrad`` (Smilkov et al. 2017): the gradient averaged over ``samples`` noisy copies
  ``x + N(0, sigma^2)``, ``sigma = noise * (max x - min x)`` (seeded), then the same max of
  magnitudes.  The signed gradients are averaged, as in the paper.
- ``integrated`` (Sundararajan et al. 2017): ``(x - x') * mean_k grad f(x' + a_k (x - x'))``
  by the midpoint rule, ``a_k = (k + 1/2) / steps``, from the baseline ``x'``; the map is the
  attributions summed over channels (signed), and they add up to ``f(x) - f(x')``.

The noisy copies and the path points run as batches through the net (the worker reshapes the
input blob to each batch), ``chunk`` at a time to bound memory: ``ceil(samples / chunk)``
forward/backward requests, not one per copy.  A "black" baseline is a black image preprocessed
like the input: ``-mean * scale`` in the blob, not zero (a zero blob is the mean image).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from protoedit.document import Document
from protoedit.errors import InputError, Location, MissingArgumentError
from protoedit.explain.layer_gradients import (
    InputSource,
    NetSource,
    _document,
    input_shapes,
    load_inputs,
    prepare,
)
from protoedit.explain.preprocess import Preprocess, blob_to_image, image_to_blob, load_input
from protoedit.explain.session import DEFAULT_TIMEOUT, CaffeSession
from protoedit.net.layers import READS_SCORES, is_a, no_backward
from protoedit.net.view import INPUT, NetView
from protoedit.rewrites import LossHead, filter_net
from protoedit.rewrites.report import RewriteReport
from protoedit.rewrites.upgrade import needs_upgrade, upgrade

Array = npt.NDArray[np.float32]
Method = Literal["gradient", "smoothgrad", "integrated"]
METHODS: tuple[Method, ...] = ("gradient", "smoothgrad", "integrated")

#: Defaults: SmoothGrad's paper finds 10-20 % noise and ~50 samples enough; 64 midpoint steps
#: keep integrated gradients' completeness gap well inside 5 % (IG's paper: 20-300 steps).
DEFAULT_SAMPLES = 50
DEFAULT_NOISE = 0.15
DEFAULT_STEPS = 64
#: Batch items per forward/backward request: bounds the worker's memory on large nets.
DEFAULT_CHUNK = 32


@dataclass
class Saliency:
    """A saliency map (H x W) and what it was computed from (arrays C x H x W, as fed)."""

    method: Method
    map: Array
    gradient: Array  # d f / d x (smoothgrad: the mean over copies; integrated: over the path)
    input: Array
    value: float  # f(x)
    attributions: Array | None = None  # integrated only, per channel
    baseline: Array | None = None
    baseline_value: float | None = None  # f(baseline)
    requests: int = 0  # forward/backward requests the worker served
    target: str = ""
    preprocess: Preprocess = field(default_factory=Preprocess)
    warnings: list[str] = field(default_factory=list)
    report: RewriteReport = field(default_factory=RewriteReport)

    @property
    def completeness_gap(self) -> float | None:
        """``sum(attributions) - (f(x) - f(baseline))``: zero for exact integrated gradients."""
        if self.attributions is None or self.baseline_value is None:
            return None
        total = float(np.sum(self.attributions, dtype=np.float64))
        return total - (self.value - self.baseline_value)

    def picture(self) -> npt.NDArray[np.uint8]:
        """The input, the heat map, and the heat map over the input, side by side (uint8 RGB)."""
        from protoedit.explain.heatmap import panels

        return panels(blob_to_image(self.input, self.preprocess), self.map)

    def save(self, path: str | os.PathLike[str]) -> list[Path]:
        """Write the picture to ``path`` (a ``.png``), the map beside it as ``.npy`` and, for
        integrated gradients, the per-channel attributions as ``-attributions.npy``."""
        from protoedit.explain.heatmap import write_png

        png = Path(path)
        if png.suffix.lower() != ".png":
            raise InputError("the heat map is written as PNG: give a path ending in .png")
        written = [png, png.with_suffix(".npy")]
        write_png(png, self.picture())
        np.save(written[1], self.map)
        if self.attributions is not None:
            written.append(png.with_name(png.stem + "-attributions.npy"))
            np.save(written[2], self.attributions)
        return written


def logits_target(net: NetSource) -> str:
    """The layer whose top a class head reads when no target is named: the net's one output,
    or what its final Softmax (or a training net's SoftmaxWithLoss and Accuracy) reads, the
    logits (the softmax saturates, so its gradient says little)."""
    doc = _document(net)
    if needs_upgrade(doc):
        upgrade(doc)
    filter_net(doc, "TEST")
    view = NetView(doc)
    found: dict[str, None] = {}
    for version in view.outputs():
        info = view.by_index[version.producer]
        if is_a(info.type, READS_SCORES) and info.reads and info.reads[0].producer != INPUT:
            found[view.by_index[info.reads[0].producer].name] = None
        elif not no_backward(info.type):  # a loss, or a layer that needs labels
            found[info.name] = None
    if len(found) != 1:
        names = ", ".join(f"'{name}'" for name in found) or "none"
        raise MissingArgumentError(
            f"cannot tell which layer holds the class scores (candidates: {names})",
            {"target": None},
        )
    return next(iter(found))


def _per_item_factor(head: LossHead, items: int) -> float:
    """What turns d(batch loss)/d(item) into d f(item)/d(item): a mean over the batch divides
    each item's share by the batch size; sums (and SUMSQ heads) do not."""
    return float(items) if head.reduce == "mean" and head.kind != "sumsq" else 1.0


def _single(doc: Document, source: InputSource, pre: Preprocess, what: str) -> tuple[str, Array]:
    """The net's one input blob and ``source`` as its C x H x W data."""
    declared = input_shapes(doc)
    if len(declared) != 1:
        names = ", ".join(declared) or "none"
        raise InputError(f"a saliency map needs a net with one input blob, not {names}")
    blob, array = next(iter(load_inputs(doc, source, pre).items()))
    if array.shape[0] != 1:
        where = Location(str(source)) if isinstance(source, str | os.PathLike) else None
        raise InputError(f"the {what} is a batch of {array.shape[0]}: give one item", where)
    return blob, array[0]


def _image_size(source: InputSource) -> tuple[int, int] | None:
    """Width x height of an image file (None for arrays and ``.npy``)."""
    if not isinstance(source, str | os.PathLike) or str(source).lower().endswith(".npy"):
        return None
    from PIL import Image

    with Image.open(source) as image:
        size: tuple[int, int] = image.size
    return size


def black_baseline(shape: tuple[int, int, int], pre: Preprocess) -> Array:
    """A black image (every pixel 0) preprocessed like the input: ``-mean * scale``."""
    channels, height, width = shape
    return image_to_blob(np.zeros((height, width, channels), np.float32), shape, pre)


def _baseline(
    source: InputSource | None,
    image: InputSource,
    shape: tuple[int, int, int],
    pre: Preprocess,
) -> Array:
    """The baseline's blob data: black, or ``source`` preprocessed exactly like the image."""
    if source is None:
        return black_baseline(shape, pre)
    if isinstance(source, str | os.PathLike) and not str(source).lower().endswith(".npy"):
        data: Array = load_input(source, (1, *shape), pre)[0]  # decodes (or refuses) first
        have, want = _image_size(source), _image_size(image)
        if have is not None and want is not None and have != want:
            raise InputError(
                f"the baseline is {have[0]} x {have[1]} pixels, the image {want[0]} x {want[1]}: "
                "a baseline must line up with the image pixel for pixel",
                Location(str(source)),
            )
        return data
    where = Location(str(source)) if isinstance(source, str | os.PathLike) else None
    if isinstance(source, str | os.PathLike):
        array = load_input(source, (1, *shape), pre)
    else:
        array = np.asarray(source, dtype=np.float32)
    if array.ndim == len(shape) + 1 and array.shape[0] == 1:
        array = array[0]
    if tuple(array.shape) != shape:
        raise InputError(
            f"the baseline has shape {list(array.shape)}; the image is "
            f"{' x '.join(map(str, shape))} as fed to the net",
            where,
        )
    return array


def _gradients_of(
    session: CaffeSession,
    blob: str,
    head: LossHead,
    points: Callable[[int, int], Array],
    count: int,
    chunk: int,
) -> tuple[npt.NDArray[np.float64], int]:
    """The mean over ``count`` batch items (made ``chunk`` at a time by ``points(start,
    stop)``) of each item's d f / d x; and the number of requests it took."""
    total: npt.NDArray[np.float64] | None = None
    requests = 0
    for start in range(0, count, chunk):
        stop = min(count, start + chunk)
        batch = points(start, stop)
        answer = session.run({blob: batch}, backward=True, param_grads=False)
        requests += 1
        grads = answer["inputs"][blob].astype(np.float64)
        summed = grads.sum(axis=0) * _per_item_factor(head, stop - start)
        total = summed if total is None else total + summed
    assert total is not None
    return total / count, requests


def saliency(
    net: NetSource,
    *,
    weights: str | os.PathLike[str] | None,
    image: InputSource,
    head: LossHead,
    target: str | None = None,
    method: Method = "gradient",
    samples: int = DEFAULT_SAMPLES,
    noise: float = DEFAULT_NOISE,
    steps: int = DEFAULT_STEPS,
    baseline: InputSource | None = None,
    seed: int = 0,
    chunk: int = DEFAULT_CHUNK,
    preprocess: Preprocess | None = None,
    after_inplace: bool = False,
    channels: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Saliency:
    """The saliency map of ``image`` for ``head`` on ``target`` (for a ``logit`` head the
    target defaults to the net's class scores: :func:`logits_target`), by ``method``; see the
    module docstring.

    ``image`` is an image file, a ``.npy`` or an array (C x H x W or 1 x C x H x W, as fed);
    ``baseline`` likewise (integrated only; black when None).  ``preprocess`` says how image
    files become blobs, what "black" is, and how the input is shown under the map.
    """
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}: one of {', '.join(METHODS)}")
    for name, given in (("samples", samples), ("steps", steps), ("chunk", chunk)):
        if given < 1:
            raise InputError(f"{name} must be at least 1, not {given}")
    if not noise >= 0:
        raise InputError(f"the noise level must be a non-negative fraction, not {noise}")
    if target is None:
        if head.kind != "logit":
            raise InputError("name the target layer (only a class head finds its own)")
        target = logits_target(net)
    pre = preprocess or Preprocess()
    doc, report = prepare(
        net, target=target, head=head, after_inplace=after_inplace, channels=channels
    )
    blob, x = _single(doc, image, pre, "image")
    shape = (int(x.shape[0]), int(x.shape[1]), int(x.shape[2]))
    base = _baseline(baseline, image, shape, pre) if method == "integrated" else None
    attributions: Array | None = None
    baseline_value: float | None = None
    with CaffeSession(doc.dumps(), weights=weights, net_path=doc.path, timeout=timeout) as session:
        # f(x) by a forward pass (with the gradient too for the plain method).
        answer = session.run({blob: x[None]}, backward=method == "gradient", param_grads=False)
        value = float(answer["loss"])
        requests = 1
        if method == "gradient":
            gradient = answer["inputs"][blob][0].astype(np.float64)
        elif method == "smoothgrad":
            rng = np.random.default_rng(seed)
            sigma = noise * float(x.max() - x.min())

            def noisy(start: int, stop: int) -> Array:
                draws = rng.standard_normal((stop - start, *shape))
                return (x[None] + sigma * draws).astype(np.float32)

            gradient, batches = _gradients_of(session, blob, head, noisy, samples, chunk)
            requests += batches
        else:
            assert base is not None
            delta = x.astype(np.float64) - base

            def on_path(start: int, stop: int) -> Array:
                alphas = (np.arange(start, stop, dtype=np.float64) + 0.5) / steps
                return (base[None] + alphas[:, None, None, None] * delta[None]).astype(np.float32)

            gradient, batches = _gradients_of(session, blob, head, on_path, steps, chunk)
            baseline_value = float(session.run({blob: base[None]}, backward=False)["loss"])
            requests += batches + 1
            attributions = (delta * gradient).astype(np.float32)
        missing = session.info["missing"]
    warnings = [
        f"layer '{name}' is not in the weights file: its parameters keep their fillers"
        for name in missing
    ]
    if weights is None:
        warnings.append("no weights given: every parameter has its filler's initial value")
    as_float = gradient.astype(np.float32)
    if attributions is not None:
        saliency_map = attributions.sum(axis=0, dtype=np.float64).astype(np.float32)
    else:
        saliency_map = np.abs(as_float).max(axis=0)
    return Saliency(
        method=method,
        map=saliency_map,
        gradient=as_float,
        input=x,
        value=value,
        attributions=attributions,
        baseline=base,
        baseline_value=baseline_value,
        requests=requests,
        target=target,
        preprocess=pre,
        warnings=warnings,
        report=report,
    )
