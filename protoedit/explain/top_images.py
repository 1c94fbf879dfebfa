"""Dataset examples: the k images (and, for a spatial layer, the patches) that excite each
unit of a target most, streamed through a Caffe worker in batches.

For a spatial target a unit is a channel; an image's score is the channel's maximum over
positions, and the patch is the receptive field (:mod:`protoedit.net.receptive`) of the
position where it is reached, clipped to the image.  Ties go to the earlier image.  Memory
holds the running top k of every unit and one batch, whatever the number of images; the
state after each batch (:meth:`TopK.state`) can be stored and resumed from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from protoedit.errors import InputError, Location
from protoedit.explain.explainer import Explainer, SessionSource, WeightsSource
from protoedit.explain.inputs import NetSource, private_copy
from protoedit.explain.layer_gradients import prepare
from protoedit.explain.preprocess import Preprocess, load_input
from protoedit.explain.session import DEFAULT_TIMEOUT
from protoedit.net.receptive import Box, ReceptiveField, receptive_field
from protoedit.net.view import NetView
from protoedit.rewrites import LossHead

Array = npt.NDArray[np.float32]
#: The files a folder of images is read for (sorted by path, sub-folders included).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".npy")
DEFAULT_K = 9
DEFAULT_BATCH = 64

ImagesSource = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | npt.NDArray[Any]


class TopK:
    """The running k best (value, image index, position) of each of ``channels`` units, and
    the sums that give each unit's statistics over all images (of its per-image score)."""

    def __init__(self, channels: int, k: int, spatial: int) -> None:
        self.k = k
        self.total = np.zeros(channels, np.float64)
        self.squares = np.zeros(channels, np.float64)
        self.positive = np.zeros(channels, np.int64)
        self.values = np.zeros((channels, 0), np.float32)
        self.indices = np.zeros((channels, 0), np.int64)
        self.positions = np.zeros((channels, 0, spatial), np.int64)
        self.seen = 0

    def add(self, activations: npt.NDArray[Any], start: int) -> None:
        """Fold in a batch (B x C x spatial...) of images numbered from ``start``."""
        batch, channels = activations.shape[:2]
        spatial = activations.shape[2:]
        flat = activations.reshape(batch, channels, -1)
        where = flat.argmax(axis=2)
        best = np.take_along_axis(flat, where[..., None], axis=2)[..., 0]
        place = np.stack(np.unravel_index(where, spatial), axis=-1) if spatial else None
        scores = best.astype(np.float64)
        self.total += scores.sum(axis=0)
        self.squares += (scores**2).sum(axis=0)
        self.positive += (scores > 0).sum(axis=0)
        values = np.concatenate([self.values, best.T.astype(np.float32)], axis=1)
        numbers = np.broadcast_to(np.arange(start, start + batch), (channels, batch))
        indices = np.concatenate([self.indices, numbers], axis=1)
        if place is None:
            place = np.zeros((batch, channels, 0), np.int64)
        positions = np.concatenate([self.positions, place.transpose(1, 0, 2)], axis=1)
        order = np.lexsort((indices, -values.astype(np.float64)), axis=1)[:, : self.k]
        self.values = np.take_along_axis(values, order, axis=1)
        self.indices = np.take_along_axis(indices, order, axis=1)
        self.positions = np.take_along_axis(positions, order[..., None], axis=1)
        self.seen = max(self.seen, start + batch)

    def state(self) -> dict[str, Any]:
        """What resuming needs (arrays and the count of images folded in), a copy."""
        return {
            "values": self.values,
            "indices": self.indices,
            "positions": self.positions,
            "seen": self.seen,
            "total": self.total.copy(),
            "squares": self.squares.copy(),
            "positive": self.positive.copy(),
        }

    def stats(self) -> dict[str, npt.NDArray[np.float64]]:
        """Per unit, over the images seen: the ``mean`` and ``std`` of its score and the
        ``active`` fraction (score above 0)."""
        count = max(self.seen, 1)
        mean = self.total / count
        spread = np.sqrt(np.maximum(self.squares / count - mean**2, 0))
        return {"mean": mean, "std": spread, "active": self.positive / count}

    @classmethod
    def resume(cls, state: dict[str, Any], k: int) -> TopK:
        """The accumulator a :meth:`state` was taken of."""
        values = np.asarray(state["values"], np.float32)
        positions = np.asarray(state["positions"], np.int64)
        top = cls(values.shape[0], k, positions.shape[2])
        top.values, top.positions = values, positions
        top.indices = np.asarray(state["indices"], np.int64)
        top.seen = int(state["seen"])
        top.total = np.asarray(state["total"], np.float64)
        top.squares = np.asarray(state["squares"], np.float64)
        top.positive = np.asarray(state["positive"], np.int64)
        return top


def image_files(images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """A folder's image files (sorted, sub-folders included) or the files given, which must
    exist."""
    given = [images] if isinstance(images, str | os.PathLike) else list(images)
    files: list[Path] = []
    for item in given:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError("no image files in the folder", Location(str(path)))
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise InputError("no such image file or folder", Location(str(path)))
    return files


class ImageStream:
    """Numbered images as blobs, in batches: files (read and preprocessed one batch at a time)
    or an N x C x H x W array as fed."""

    def __init__(self, images: ImagesSource, shape: tuple[int, ...], pre: Preprocess) -> None:
        self.shape = shape
        self.pre = pre
        if isinstance(images, np.ndarray):
            if images.ndim != len(shape) or tuple(images.shape[1:]) != tuple(shape[1:]):
                raise InputError(
                    f"the images have shape {list(images.shape)}; the net expects "
                    f"N x {' x '.join(map(str, shape[1:]))}"
                )
            self.array: npt.NDArray[Any] | None = images
            self.files: list[Path] = []
            self.names = [f"#{n}" for n in range(len(images))]
        else:
            self.array = None
            self.files = image_files(images)
            self.names = [str(p) for p in self.files]

    def __len__(self) -> int:
        return len(self.names)

    def item(self, index: int) -> Array:
        """Image ``index`` as its C x H x W blob."""
        if self.array is not None:
            return np.asarray(self.array[index], np.float32)
        data = load_input(self.files[index], (1, *self.shape[1:]), self.pre)
        if data.ndim == len(self.shape):
            data = data[0]
        if tuple(data.shape) != tuple(self.shape[1:]):
            raise InputError(
                f"the array has shape {list(data.shape)}, not {list(self.shape[1:])}",
                Location(self.names[index]),
            )
        return data

    def batches(self, start: int, size: int) -> Iterator[tuple[int, Array]]:
        """``(first index, batch)`` from image ``start`` on."""
        for first in range(start, len(self), size):
            stop = min(len(self), first + size)
            if self.array is not None:
                yield first, np.asarray(self.array[first:stop], np.float32)
            else:
                yield first, np.stack([self.item(n) for n in range(first, stop)])


@dataclass
class TopImages:
    """Each unit's top ``k``: ``values`` (C x k), ``indices`` into ``names`` (C x k) and,
    for a spatial target, the ``positions`` (C x k x axes) of the maxima and the target's
    ``receptive`` field (None, with ``field_reason``, when it has none)."""

    target: str
    values: Array
    indices: npt.NDArray[np.int64]
    positions: npt.NDArray[np.int64]
    names: list[str]
    receptive: ReceptiveField | None = None
    field_reason: str = ""
    stats: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def box(self, channel: int, rank: int) -> Box | None:
        """The input pixels of unit ``channel``'s ``rank``-th patch (None: the whole image)."""
        if self.receptive is None or self.positions.shape[2] == 0:
            return None
        return self.receptive.box(*map(int, self.positions[channel, rank]))

    def rows(self) -> list[dict[str, Any]]:
        """One record per unit: its top images, values, positions and patch boxes."""
        out = []
        for channel in range(self.values.shape[0]):
            entries = []
            for rank in range(self.values.shape[1]):
                box = self.box(channel, rank)
                entries.append(
                    {
                        "image": self.names[int(self.indices[channel, rank])],
                        "value": float(self.values[channel, rank]),
                        "position": [int(p) for p in self.positions[channel, rank]],
                        "box": None if box is None else [list(box.begin), list(box.end)],
                    }
                )
            stats = {name: float(values[channel]) for name, values in self.stats.items()}
            out.append({"unit": channel, "top": entries, "stats": stats})
        return out


class TopImagesFinder(Explainer):
    """``net`` truncated at ``target`` in a Caffe worker; :meth:`find` streams images."""

    def __init__(
        self,
        net: NetSource,
        *,
        weights: WeightsSource,
        target: str,
        after_inplace: bool = False,
        preprocess: Preprocess | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        session: SessionSource | None = None,
        allow_python_layers: bool = False,
        strict_weights: bool = False,
    ) -> None:
        original = private_copy(net)
        doc, report = prepare(original, target=target, head=LossHead(), after_inplace=after_inplace)
        super().__init__(
            doc,
            report,
            weights=weights,
            timeout=timeout,
            session=session,
            allow_python_layers=allow_python_layers,
            strict_weights=strict_weights,
        )
        self.target = target
        self.blob = NetView(doc).resolve(target).blob
        if len(self.inputs) != 1:
            names = ", ".join(self.inputs) or "none"
            raise InputError(f"dataset examples need a net with one input blob, not {names}")
        self.input, self.shape = next(iter(self.inputs.items()))
        self.preprocess = preprocess or Preprocess()
        self.field: ReceptiveField | None = None
        self.field_reason = ""
        try:
            self.field = receptive_field(original, target, input=self.input)
        except InputError as exc:
            self.field_reason = exc.message

    def stream(self, images: ImagesSource) -> ImageStream:
        """The images as numbered blobs of this net's input."""
        return ImageStream(images, self.shape, self.preprocess)

    def find(
        self,
        images: ImagesSource | ImageStream,
        *,
        k: int = DEFAULT_K,
        batch: int = DEFAULT_BATCH,
        resume: dict[str, Any] | None = None,
        progress: bool | None = False,
        on_batch: Any = None,
    ) -> TopImages:
        """Each unit's top ``k`` over ``images``, ``batch`` at a time; ``resume``: a
        :meth:`TopK.state` to go on from; ``on_batch(state)`` is called after each batch."""
        from protoedit.progress import progress_bar

        if k < 1 or batch < 1:
            raise InputError(f"k and batch must be at least 1, not {k} and {batch}")
        stream = images if isinstance(images, ImageStream) else self.stream(images)
        session = self.session()
        top = TopK.resume(resume, k) if resume is not None else None
        start = top.seen if top is not None else 0
        with progress_bar(len(stream), unit="image", enabled=progress, initial=start) as bar:
            for first, data in stream.batches(start, batch):
                answer = session.run({self.input: data}, backward=False, blobs=(self.blob,))
                activations = answer["blobs"][self.blob]
                if top is None:
                    top = TopK(activations.shape[1], k, activations.ndim - 2)
                top.add(activations, first)
                bar.update(len(data))
                if on_batch is not None:
                    on_batch(top.state())
        if top is None:
            raise InputError("no images to rank")
        return TopImages(
            target=self.target,
            values=top.values,
            indices=top.indices,
            positions=top.positions,
            names=stream.names,
            receptive=self.field,
            field_reason=self.field_reason,
            stats=top.stats(),
            warnings=self.warnings(),
        )


def top_images(
    net: NetSource,
    *,
    weights: WeightsSource,
    target: str,
    images: ImagesSource,
    k: int = DEFAULT_K,
    batch: int = DEFAULT_BATCH,
    after_inplace: bool = False,
    preprocess: Preprocess | None = None,
    progress: bool | None = False,
    timeout: float = DEFAULT_TIMEOUT,
    session: SessionSource | None = None,
    allow_python_layers: bool = False,
    strict_weights: bool = False,
) -> TopImages:
    """Each unit of ``target``'s ``k`` strongest ``images`` (a folder, files, or an
    N x C x H x W array as fed): :meth:`TopImagesFinder.find` once."""
    with TopImagesFinder(
        net,
        weights=weights,
        target=target,
        after_inplace=after_inplace,
        preprocess=preprocess,
        timeout=timeout,
        session=session,
        allow_python_layers=allow_python_layers,
        strict_weights=strict_weights,
    ) as finder:
        return finder.find(images, k=k, batch=batch, progress=progress)


def write_json(result: TopImages, path: str | os.PathLike[str]) -> Path:
    """The records of :meth:`TopImages.rows` with the field, as JSON (atomically)."""
    from protoedit.files import write_atomic

    field_info = None
    if result.receptive is not None:
        field_info = {
            "size": list(result.receptive.size),
            "stride": list(result.receptive.stride),
            "offset": list(result.receptive.offset),
        }
    text = json.dumps(
        {"target": result.target, "field": field_info, "units": result.rows()}, indent=1
    )
    write_atomic(path, text + "\n")
    return Path(path)
