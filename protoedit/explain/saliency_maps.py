"""A saliency map and what it is made from: the result of the methods of
:mod:`protoedit.explain.attribution`, the image and baseline as blobs, the net's class scores.

An image given as an array (or ``.npy``) is the blob as fed to the net, already
preprocessed; an image file is pixels, preprocessed by ``preprocess``.  The picture shows the
input as the net saw it, stretched to its own range (so an input in [0, 1] is not shown
black).  A "black" baseline is a black image preprocessed like the input: ``-mean * scale``
in the blob, not zero (a zero blob is the mean image).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from protoedit.errors import InputError, Location, MissingArgumentError
from protoedit.explain.inputs import (
    InputSource,
    NetSource,
    load_inputs,
    private_copy,
)
from protoedit.explain.preprocess import Preprocess, finite_input, image_to_blob, load_input
from protoedit.net.layers import READS_SCORES, is_a, no_backward
from protoedit.net.view import INPUT, NetView
from protoedit.rewrites import LossHead, filter_net
from protoedit.rewrites.report import RewriteReport
from protoedit.rewrites.upgrade import needs_upgrade, upgrade

Array = npt.NDArray[np.float32]
Method = Literal[
    "gradient",
    "smoothgrad",
    "integrated",
    "gradcam",
    "gradcam++",
    "guided",
    "deconvnet",
    "guided-gradcam",
]
METHODS: tuple[Method, ...] = get_args(Method)
#: The methods that read a layer's activations (``layer=``, ``--layer``).
LAYER_METHODS = ("gradcam", "gradcam++", "guided-gradcam")

#: Defaults: SmoothGrad's paper finds 10-20 % noise and ~50 samples enough; 64 midpoint steps
#: keep integrated gradients' completeness gap well inside 5 % (IG's paper: 20-300 steps).
DEFAULT_SAMPLES = 50
DEFAULT_NOISE = 0.15
DEFAULT_STEPS = 64
#: Integrated gradients with the steps not given: doubled from DEFAULT_STEPS while the
#: completeness gap is over DEFAULT_TOLERANCE of f(x) - f(baseline), up to DEFAULT_MAX_STEPS
#: (a trained ResNet-50 needs about 256 where the digits net needs 64).
DEFAULT_TOLERANCE = 0.05
DEFAULT_MAX_STEPS = 512
#: Batch items per forward/backward request: bounds the worker's memory on large nets.
DEFAULT_CHUNK = 32


@dataclass
class Saliency:
    """A saliency map (H x W) and what it was computed from (arrays C x H x W, as fed).

    ``method`` names it (``smoothgrad(integrated)`` for SmoothGrad over integrated
    gradients); ``path_value`` is f at the end of the path when that is not ``value`` (the
    mean over noisy copies), for :attr:`completeness_gap`."""

    method: str
    map: Array
    gradient: Array  # d f / d x (smoothgrad: the mean over copies; integrated: over the path)
    input: Array
    value: float  # f(x)
    attributions: Array | None = None  # integrated only, per channel
    baseline: Array | None = None
    baseline_value: float | None = None  # f(baseline)
    requests: int = 0  # forward/backward requests the worker served
    path_value: float | None = None
    target: str = ""
    layer: str = ""  # Grad-CAM's layer
    layer_map: Array | None = None  # Grad-CAM's map at the layer's resolution
    preprocess: Preprocess = field(default_factory=Preprocess)
    warnings: list[str] = field(default_factory=list)
    report: RewriteReport = field(default_factory=RewriteReport)
    #: Integrated gradients: the steps used, and each (steps, gap share) tried on the way.
    steps: int | None = None
    steps_tried: list[tuple[int, float | None]] = field(default_factory=list)

    @property
    def completeness_gap(self) -> float | None:
        """``sum(attributions) - (f(x) - f(baseline))``: zero for exact integrated gradients."""
        if self.attributions is None or self.baseline_value is None:
            return None
        total = float(np.sum(self.attributions, dtype=np.float64))
        end = self.value if self.path_value is None else self.path_value
        return total - (end - self.baseline_value)

    def picture(self) -> npt.NDArray[np.uint8]:
        """The input as the net saw it (stretched to its own range), the heat map, and the
        heat map over the input, side by side (uint8 RGB)."""
        from protoedit.picture import normalised, panels

        return panels(normalised(self.input, bgr=not self.preprocess.rgb), self.map)

    def save(self, path: str | os.PathLike[str]) -> list[Path]:
        """Write the picture to ``path`` (a ``.png``: with a title, and the colour bar with its
        scale), the map beside it as ``.npy`` and, for
        integrated gradients, the per-channel attributions as ``-attributions.npy``."""
        from protoedit.picture import captioned, write_png

        png = Path(path)
        if png.suffix.lower() != ".png":
            raise InputError("the heat map is written as PNG: give a path ending in .png")
        written = [png, png.with_suffix(".npy")]
        title = f"{self.method} saliency of '{self.target}': f(image) = {self.value:.6g}"
        write_png(png, captioned(self.picture(), title, self.map))
        np.save(written[1], self.map)
        if self.attributions is not None:
            written.append(png.with_name(png.stem + "-attributions.npy"))
            np.save(written[2], self.attributions)
        return written


def logits_target(net: NetSource) -> str:
    """The layer whose top a class head reads when no target is named: the net's one output,
    or what its final Softmax (or a training net's SoftmaxWithLoss and Accuracy) reads, the
    logits (the softmax saturates, so its gradient says little)."""
    doc = private_copy(net)
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


def per_item_factor(head: LossHead, items: int) -> float:
    """What turns d(batch loss)/d(item) into d f(item)/d(item): a mean over the batch divides
    each item's share by the batch size; sums (and SUMSQ heads) do not."""
    return float(items) if head.reduce == "mean" and head.kind != "sumsq" else 1.0


def single_input(
    declared: Mapping[str, tuple[int, ...]], source: InputSource, pre: Preprocess, what: str
) -> tuple[str, Array]:
    """The net's one input blob (of ``declared``) and ``source`` as its C x H x W data."""
    if len(declared) != 1:
        names = ", ".join(declared) or "none"
        raise InputError(f"a saliency map needs a net with one input blob, not {names}")
    blob, array = next(iter(load_inputs(declared, source, pre).items()))
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


def baseline_blob(
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
        array = finite_input(np.asarray(source, dtype=np.float32), "the baseline")
    if array.ndim == len(shape) + 1 and array.shape[0] == 1:
        array = array[0]
    if tuple(array.shape) != shape:
        raise InputError(
            f"the baseline has shape {list(array.shape)}; the image is "
            f"{' x '.join(map(str, shape))} as fed to the net",
            where,
        )
    return array
