"""Activation maximisation: the input image that most excites each unit, several units per batch.

The net is rewritten in memory into a visualisation net (:func:`visualization_net`): upgraded,
filtered for TEST, ``force_backward``, truncated at the target, and given a head whose loss is
``sum(mask * target)``.  ``mask`` is an extra Input blob, N x C: row ``n`` holds the weights of
element ``n``'s own unit (``1 / (H*W)`` on its channel for a channel mean), so one batch
optimises N different units at once, and N x 1 x ... gradients come out of one backward.  When
the target is a ReLU's output, a second mask reads the value before the ReLU: a unit that is
zero everywhere (dead) would get no gradient through the ReLU, so its element follows the
pre-activation until it comes alive.

The optimisation loop runs in the Caffe worker (:mod:`protoedit.explain.ascent`), a chunk of
steps per request; octaves (coarse to fine image sizes) and the outputs are handled here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from protoedit.document import Document
from protoedit.errors import InputError, InvalidArgumentError
from protoedit.explain.layer_gradients import NetSource, _document, input_shapes
from protoedit.explain.preprocess import Preprocess, _mean_array, blob_to_image, fit_image
from protoedit.explain.preprocess import load_input as load_image_input
from protoedit.explain.session import DEFAULT_TIMEOUT, CaffeSession
from protoedit.net.layers import SIZE_BOUND, is_a, is_data_layer, learnt_param_count, no_backward
from protoedit.net.shapes import infer_shapes
from protoedit.net.view import INPUT, BlobVersion, NetView
from protoedit.progress import progress_bar
from protoedit.rewrites import filter_net, force_backward, needs_upgrade, truncate, upgrade
from protoedit.rewrites.add_loss import infer_channels, layer_text, rename_blobs
from protoedit.rewrites.report import RewriteReport
from protoedit.rewrites.truncate import target_value
from protoedit.syntax.edit import parse_fields
from protoedit.syntax.tree import Block

Array = npt.NDArray[np.float32]
PREFIX = "protoedit_vis_"
MASK = f"{PREFIX}mask"
PRE_MASK = f"{PREFIX}pre_mask"


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

    def resolved(self, height: int, width: int) -> Settings:
        """Fill the size-dependent defaults.  A tiny image (8x8 digits) has few pixels, each
        of which must move further per step; a large one is tiled in two."""
        small = min(height, width) < 32
        step = self.step if self.step is not None else (24.0 if small else 3.0)
        end = self.step_end if self.step_end is not None else step / 3
        tile = self.tile if self.tile is not None else (2 if min(height, width) >= 64 else 1)
        return replace(self, step=step, step_end=end, tile=tile)


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
class Unit:
    """One unit of the target: a channel (its mean over positions) or one position of it."""

    channel: int
    position: tuple[int, ...] | None = None

    def tag(self) -> str:
        """For file names: ``c7``, ``c7_3_4``."""
        return "_".join([f"c{self.channel}", *map(str, self.position or ())])


@dataclass
class Head:
    """What :func:`visualization_net` built: the measured blob, the pre-activation blob (None
    without a ReLU), the image input, the target's channels and declared shape."""

    input: str
    post: str
    pre: str | None
    channels: int
    shape: tuple[int, ...] | None
    spatial_ok: bool  # every layer up to the target takes another image size


def _fixed_ancestors(view: NetView, version: BlobVersion) -> bool:
    return any(is_a(view.by_index[i].type, SIZE_BOUND) for i in view.ancestors([version]))


def visualization_net(
    net: NetSource, target: str, *, after_inplace: bool = True
) -> tuple[Document, Head, RewriteReport]:
    """``net`` rewritten so that its loss is ``sum(mask * target)`` (see the module text)."""
    doc = _document(net)
    report = RewriteReport()
    if needs_upgrade(doc):
        report.extend(upgrade(doc))
    view = NetView(doc)
    if any(is_data_layer(info.param) for info in view.layers):
        from protoedit.rewrites.to_deploy import to_deploy

        report.extend(to_deploy(doc, "TEST", None, None))
    else:
        report.extend(filter_net(doc, "TEST"))
    view = NetView(doc)
    version = target_value(view, target, after_inplace)
    if version.producer == INPUT:
        raise InputError(f"'{target}' is an input blob, not a layer's output")
    for index in view.ancestors([version]):
        info = view.by_index[index]
        if no_backward(info.type):
            raise InputError(
                f"layer '{info.name}' ({info.type}) cannot run backward, and the target "
                "depends on it",
                doc.location(info.pos),
            )
    report.extend(force_backward(doc))
    report.extend(truncate(doc, target, after_inplace))
    view = NetView(doc)
    version = target_value(view, target, after_inplace)
    shapes = infer_shapes(view)
    shape = shapes.get(version)
    channels = infer_channels(view, version, shapes)
    if channels is None:
        raise InputError(f"cannot tell how many channels '{version.blob}' has")
    inputs = list(input_shapes(doc))
    if len(inputs) != 1:
        raise InputError(
            f"visualize needs a net with one input blob, this one has {len(inputs)}"
            + (f" ({', '.join(inputs)})" if inputs else "")
        )
    producer = view.by_index[version.producer]
    post, pre = version.blob, None
    if producer.type == "ReLU" and producer.reads:
        pre = producer.reads[0].blob
        if pre == post:  # in place: the ReLU writes a new blob, the pre-activation survives
            taken = {w.blob for info in view.layers for w in info.writes}
            post = f"{PREFIX}{version.blob}".replace("/", "_")
            while post in taken:
                post += "_"
            rename_blobs(doc, [("top", producer, 0)], post)
            report.changed.append(
                f"'{producer.name}' writes '{post}', so '{pre}' keeps the pre-activation"
            )
    frozen = _freeze_parameters(doc, view)
    if frozen:
        report.changed.append(
            f"lr_mult 0 on the parameters of {frozen} layers: backward skips their gradients"
        )
    head = Head(
        inputs[0],
        post,
        pre,
        channels,
        tuple(shape) if shape else None,
        not _fixed_ancestors(view, version),
    )
    _add_head(doc, head)
    report.changed.append(
        f"loss = sum({MASK} x '{post}')"
        + (f" + sum({PRE_MASK} x '{pre}')" if pre else "")
        + f"; {MASK} is an N x {channels} input: one unit per batch element"
    )
    return doc, head, report


def _freeze_parameters(doc: Document, view: NetView) -> int:
    """``lr_mult: 0`` on every parameter of the layers whose blob count is known: only the
    input's gradient is needed, and Caffe then skips the weight-gradient products (a third of
    a convolution's forward + backward).  The number of layers changed."""
    edits: list[tuple[Block, list[Block], int]] = []  # layer, its specs, specs to add
    for info in view.layers:
        count = learnt_param_count(info.param)
        specs = len(info.param.param)
        if count is None or count == 0 or specs > count or info.block is None:
            continue
        if all(spec.lr_mult == 0 for spec in info.param.param) and specs == count:
            continue
        items = [item for _, item in doc.elements(info.block, "param")]
        edits.append((info.block, [n for n in items if isinstance(n, Block)], count - specs))
    for layer, blocks, missing in edits:  # nodes found first: each edit drops the message
        for spec in blocks:
            given = [f for f in spec.fields if f.name.text == "lr_mult"]
            if given:
                doc.replace_value(given[-1], "0")
            else:
                doc.insert_fields(spec, parse_fields("lr_mult: 0"))
        if missing:
            after = [n for n, f in enumerate(layer.fields) if f.name.text == "param"]
            where = after[-1] + 1 if after else None
            doc.insert_fields(layer, parse_fields("param { lr_mult: 0 }\n" * missing), where)
    return len(edits)


def _add_head(doc: Document, head: Head) -> None:
    """Mask inputs, Scale (mask x value, broadcast over positions), Reduction SUM as loss."""
    pairs = [(head.post, MASK, "")] + ([(head.pre, PRE_MASK, "_pre")] if head.pre else [])
    shape = f"shape {{ dim: 1 dim: {head.channels} }}"
    texts = [
        layer_text(
            f"{PREFIX}masks",
            "Input",
            [],
            [m for _, m, _ in pairs],
            "  input_param { " + " ".join(shape for _ in pairs) + " }",
        )
    ]
    for value, mask, suffix in pairs:
        product = f"{PREFIX}product{suffix}"
        texts.append(
            layer_text(product, "Scale", [value, mask], [product], "  scale_param { axis: 0 }")
        )
        texts.append(
            layer_text(
                f"{PREFIX}loss{suffix}",
                "Reduction",
                [product],
                [f"{PREFIX}loss{suffix}"],
                "  loss_weight: 1\n  reduction_param { operation: SUM axis: 0 }",
            )
        )
    view = NetView(doc)
    dangling = sorted({v.blob for v in view.outputs()} - {head.post})
    if dangling:
        texts.append(layer_text(f"{PREFIX}silence", "Silence", dangling, []))
    for text in texts:
        doc.insert("", text)


@dataclass
class UnitResult:
    """One optimised unit: its image as fed to the input blob (C x H x W) and activations."""

    unit: Unit
    label: str
    image: Array
    start: float
    end: float
    steps: int
    dead_at_start: bool


@dataclass
class Visualization:
    """The result of :func:`visualize`; :meth:`save` writes the pictures and the summary."""

    target: str
    units: list[UnitResult]
    settings: Settings
    preprocess: Preprocess
    report: RewriteReport = field(default_factory=RewriteReport)

    def picture(self, result: UnitResult) -> npt.NDArray[np.uint8]:
        """The unit's image as H x W x C uint8, the mean added back and clipped to 0-255."""
        return blob_to_image(result.image, self.preprocess)

    def save(self, grid: str | os.PathLike[str]) -> list[Path]:
        """Write the grid PNG and, next to it, ``STEM_TAG.png`` / ``STEM_TAG.npy`` per unit
        and ``STEM.json``; the paths written, grid first."""
        from PIL import Image

        from protoedit.explain.grid import labelled_grid

        path = Path(grid)
        stem = path.with_suffix("")
        tiles = [self.picture(r) for r in self.units]
        labels = [f"{r.label}\n{r.end:.4g}" for r in self.units]
        labelled_grid(tiles, labels).save(path)
        written = [path]
        summary: dict[str, Any] = {
            "target": self.target,
            "settings": asdict(self.settings),
            "units": [],
        }
        for result, tile in zip(self.units, tiles, strict=True):
            name = f"{stem.name}_{result.unit.tag()}"
            png, npy = stem.with_name(name + ".png"), stem.with_name(name + ".npy")
            Image.fromarray(tile.squeeze(2) if tile.shape[2] == 1 else tile).save(png)
            np.save(npy, result.image)
            written += [png, npy]
            summary["units"].append(
                {
                    "label": result.label,
                    "channel": result.unit.channel,
                    "position": list(result.unit.position) if result.unit.position else None,
                    "activation_start": result.start,
                    "activation_end": result.end,
                    "steps": result.steps,
                    "dead_at_start": result.dead_at_start,
                    "image": png.name,
                    "array": npy.name,
                }
            )
        summary_path = stem.with_suffix(".json")
        summary_path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        written.append(summary_path)
        return written


def parse_channels(text: str) -> list[int]:
    """``0-15`` or ``1,4,9`` or ``0-3,8``: channel numbers in the given order."""
    channels: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise InputError(f"channels are like 0-15 or 1,4,9, not {text!r}")
        first, last = int(match[1]), int(match[2] or match[1])
        if last < first:
            raise InputError(f"channel range {part.strip()!r} runs backwards")
        channels.extend(range(first, last + 1))
    return channels


def _bounds(pre: Preprocess, channels: int) -> tuple[list[float], list[float]]:
    """Per channel, the blob values of pixel 0 and 255 (the valid range after the mean)."""
    mean = _mean_array(pre, (channels, 1, 1))
    per_channel = np.zeros(channels) if mean is None else mean.reshape(channels, -1).mean(axis=1)
    if mean is not None and mean.size == 1:
        per_channel = np.full(channels, float(mean.ravel()[0]))
    low = (0.0 - per_channel) * pre.scale
    high = (255.0 - per_channel) * pre.scale
    return [float(v) for v in np.minimum(low, high)], [float(v) for v in np.maximum(low, high)]


def _schedule(
    height: int, width: int, settings: Settings, octaves: int, tile: int
) -> tuple[list[tuple[int, int]], list[int]]:
    """Image sizes and steps per phase: the octaves (coarse to fine) of the tile, then, when
    tiling, the full image for the last ``1 - tile_fraction`` of the steps."""
    tile_steps = settings.steps if tile == 1 else round(settings.steps * settings.tile_fraction)
    base_h, base_w = (height, width) if tile == 1 else (-(-height // tile), -(-width // tile))
    sizes = [
        (
            max(1, round(base_h / settings.octave_scale**k)),
            max(1, round(base_w / settings.octave_scale**k)),
        )
        for k in reversed(range(octaves))
    ]
    counts = [
        tile_steps // octaves + (1 if k < tile_steps % octaves else 0) for k in range(octaves)
    ]
    if tile > 1:
        sizes.append((height, width))
        counts.append(settings.steps - tile_steps)
    return sizes, counts


def _tiled(x: Array, height: int, width: int) -> Array:
    """The tile repeated to ``height`` x ``width`` (the image is periodic under jitter)."""
    reps = (1, 1, -(-height // x.shape[2]), -(-width // x.shape[3]))
    return np.ascontiguousarray(np.tile(x, reps)[:, :, :height, :width])


def _resize(x: Array, height: int, width: int) -> Array:
    """Bilinear resize of a batch N x C x H x W (each plane on its own)."""
    if x.shape[2:] == (height, width):
        return x
    planes = [fit_image(img.transpose(1, 2, 0), height, width, "resize") for img in x]
    return np.ascontiguousarray(np.stack(planes).transpose(0, 3, 1, 2), dtype=np.float32)


def _start_batch(
    start: Array | None,
    shape: tuple[int, ...],
    units: list[Unit],
    settings: Settings,
    pre: Preprocess,
    low: list[float],
    high: list[float],
) -> Array:
    """The first image of each element: the start image, or noise around the mean seeded by
    the seed and the unit (so a unit's result does not depend on its batch)."""
    lo = np.asarray(low, np.float32).reshape(-1, *([1] * (len(shape) - 2)))
    hi = np.asarray(high, np.float32).reshape(-1, *([1] * (len(shape) - 2)))
    images = []
    for unit in units:
        if start is not None:
            images.append(start)
        else:
            rng = np.random.default_rng([settings.seed, unit.channel, *(unit.position or ())])
            noise = rng.normal(0.0, settings.init_std * abs(pre.scale), size=shape[1:])
            images.append(np.clip(noise.astype(np.float32), lo, hi))
    return np.ascontiguousarray(np.stack(images), dtype=np.float32)


def visualize(
    net: NetSource,
    *,
    weights: str | os.PathLike[str] | None,
    target: str,
    channels: Sequence[int] | None = None,
    units: Sequence[Unit] | None = None,
    settings: Settings | None = None,
    preprocess: Preprocess | None = None,
    start: npt.ArrayLike | str | os.PathLike[str] | None = None,
    batch: int = 16,
    after_inplace: bool = True,
    progress: bool | None = None,
    chunk: int = 10,
    timeout: float = DEFAULT_TIMEOUT,
    session: CaffeSession | None = None,
) -> Visualization:
    """Maximise each unit of ``target`` (``channels`` means; or ``units``) by gradient ascent
    on the input, ``batch`` units per batch in one Caffe worker.

    ``start``: an image file, ``.npy`` or array to begin from instead of noise.  ``progress``
    None shows a bar only on a terminal.  ``chunk`` steps run per worker request.
    """
    settings = settings or Settings()
    pre = preprocess or Preprocess()
    doc, head, report = visualization_net(net, target, after_inplace=after_inplace)
    wanted = list(units) if units is not None else [Unit(c) for c in (channels or [0])]
    given = "units" if units is not None else "channels"
    if not wanted:
        raise InvalidArgumentError("no units to visualise", given)
    for unit in wanted:
        if not 0 <= unit.channel < head.channels:
            raise InvalidArgumentError(
                f"channel {unit.channel} is out of range: '{target}' has {head.channels} "
                f"channels (0-{head.channels - 1})",
                given,
            )
        if unit.position is not None:
            if head.shape is None or len(unit.position) != len(head.shape) - 2:
                raise InvalidArgumentError(
                    f"unit {unit.channel},{unit.position} does not fit '{target}'", given
                )
            for index, size in zip(unit.position, head.shape[2:], strict=True):
                if not 0 <= index < size:
                    raise InvalidArgumentError(
                        f"position {unit.position} is outside '{target}' {head.shape}", given
                    )
    shape = input_shapes(doc)[head.input]
    if len(shape) != 4:
        raise InputError(f"the input '{head.input}' has shape {list(shape)}, not N x C x H x W")
    settings = settings.resolved(int(shape[2]), int(shape[3]))
    octaves = max(1, settings.octaves)
    positions = any(u.position is not None for u in wanted)
    octaves_ok = head.spatial_ok and not positions
    if not octaves_ok:
        octaves = 1  # the net (or a unit's position) fixes the image size
    low, high = _bounds(pre, int(shape[1]))
    start_array: Array | None = None
    if start is not None:
        if isinstance(start, str | os.PathLike):
            start_array = load_image_input(start, shape, pre)
        else:
            start_array = np.asarray(start, dtype=np.float32)
        if start_array.ndim == len(shape):
            start_array = start_array[0]
        if tuple(start_array.shape) != tuple(shape[1:]):
            raise InputError(
                f"the start image has shape {list(start_array.shape)}, the input {list(shape[1:])}"
            )
    tile = settings.tile or 1
    if not octaves_ok or start_array is not None:
        tile = 1  # a fixed size, or a start image to keep as it is
    sizes, per_octave = _schedule(int(shape[2]), int(shape[3]), settings, octaves, tile)
    worker_settings = {
        "step": _rate(settings, 0, 0) * abs(pre.scale),
        "decay": settings.decay,
        "cap": settings.cap,
        "blur_radius": settings.blur_radius,
        "blur_every": settings.blur_every,
        "norm_percentile": settings.norm_percentile,
        "contribution_percentile": settings.contribution_percentile,
        "jitter": settings.jitter,
        "low": low,
        "high": high,
    }
    groups = [wanted[i : i + batch] for i in range(0, len(wanted), max(1, batch))]
    results: list[UnitResult] = []
    own = session is None
    live = session or CaffeSession(
        doc.dumps(), weights=weights, net_path=doc.path, seed=settings.seed, timeout=timeout
    )
    bar = progress_bar(settings.steps * len(groups), unit="step", enabled=progress, leave=False)
    try:
        for group in groups:
            bar.set_description(
                f"units {len(results) + 1}-{len(results) + len(group)} of {len(wanted)}"
            )
            x = _start_batch(start_array, shape, group, settings, pre, low, high)
            common: dict[str, Any] = {
                "input": head.input,
                "post": head.post,
                "pre": head.pre,
                "mask": MASK,
                "pre_mask": PRE_MASK if head.pre else None,
                "units": [(u.channel, u.position) for u in group],
                "mask_shape": (len(group), head.channels)
                if not positions
                else (len(group), *(head.shape or ())[1:]),
                "settings": worker_settings,
                "seed": settings.seed,
            }
            measured = live.ascend(x, dead=[False] * len(group), start=0, steps=0, **common)
            begin = list(measured["activation"])
            dead_at_start = list(measured["dead"])
            dead = dead_at_start
            step = 0
            if tile > 1:
                x = x[:, :, : sizes[0][0], : sizes[0][1]]
            for phase, ((height, width), count) in enumerate(zip(sizes, per_octave, strict=True)):
                repeat = tile > 1 and phase == len(sizes) - 1
                x = _tiled(x, height, width) if repeat else _resize(x, height, width)
                done = 0
                while done < count:
                    k = min(chunk, count - done)
                    rate = _rate(settings, step, k) * abs(pre.scale)
                    common["settings"] = {**worker_settings, "step": rate}
                    answer = live.ascend(x, dead=dead, start=step, steps=k, **common)
                    x, dead = answer["x"], answer["dead"]
                    done, step = done + k, step + k
                    bar.update(k)
            x = _resize(x, int(shape[2]), int(shape[3]))
            final = live.ascend(x, dead=dead, start=step, steps=0, **common)
            for n, unit in enumerate(group):
                results.append(
                    UnitResult(
                        unit=unit,
                        label=_label(target, unit),
                        image=np.ascontiguousarray(final["x"][n]),
                        start=float(begin[n]),
                        end=float(final["activation"][n]),
                        steps=settings.steps,
                        dead_at_start=bool(dead_at_start[n]),
                    )
                )
    finally:
        bar.close()
        if own:
            live.close()
    return Visualization(
        target=target, units=results, settings=settings, preprocess=pre, report=report
    )


def _rate(settings: Settings, step: int, count: int) -> float:
    """The step (pixels) for steps ``step`` .. ``step + count``: linear from ``step`` to
    ``step_end`` over the run, taken at the chunk's middle."""
    first = settings.step if settings.step is not None else 1.0
    end = settings.step_end if settings.step_end is not None else first
    middle = (step + count / 2) / max(1, settings.steps)
    return first + (end - first) * min(1.0, middle)


def _label(target: str, unit: Unit) -> str:
    where = "" if unit.position is None else "," + ",".join(map(str, unit.position))
    return f"{target}[{unit.channel}{where}]"


def classifier_target(net: NetSource) -> str:
    """The logits of a classifier: the blob the net's last Softmax reads."""
    view = NetView(_document(net))
    for info in reversed(view.layers):
        if info.type == "Softmax" and info.reads:
            return info.reads[0].blob
    raise InputError("the net has no Softmax layer: name the logits with a target")
