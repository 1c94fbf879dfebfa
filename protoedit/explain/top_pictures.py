"""Pictures of dataset examples: per unit, its top images with the patch outlined, and the
patches themselves (the receptive field, clipped to the image, on a grey field-sized tile).

Images are shown as the net saw them, each stretched to its own range; only the images some
unit ranks are read again, one at a time.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from protoedit.explain.top_images import ImageStream, TopImages, write_json

Bytes = npt.NDArray[np.uint8]
#: The outline of a patch on its image (RGB).
OUTLINE = (255, 40, 40)


def _rgb(picture: Bytes) -> Bytes:
    return np.repeat(picture, 3, axis=2) if picture.shape[2] == 1 else picture


def outlined(picture: Bytes, begin: tuple[int, ...], end: tuple[int, ...], zoom: int) -> Bytes:
    """``picture`` enlarged ``zoom`` times with the box ``begin``-``end`` outlined."""
    from protoedit.picture import enlarge

    out = np.array(enlarge(_rgb(picture), zoom))
    top, left = begin[0] * zoom, begin[1] * zoom
    bottom, right = end[0] * zoom - 1, end[1] * zoom - 1
    out[top, left : right + 1] = OUTLINE
    out[bottom, left : right + 1] = OUTLINE
    out[top : bottom + 1, left] = OUTLINE
    out[top : bottom + 1, right] = OUTLINE
    return out


def unit_pictures(
    result: TopImages, stream: ImageStream, folder: str | os.PathLike[str]
) -> list[Path]:
    """Write ``unit-NNNN-images.png`` (and, for a spatial target with a field,
    ``unit-NNNN-patches.png``: each patch where it lies in the field, grey where the field
    leaves the image) for every unit, and ``top-images.json``; the paths."""
    from protoedit.picture import MIN_TILE, factor, labelled_grid, normalised

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    bgr = not stream.pre.rgb
    cache: dict[int, Bytes] = {}

    def shown(index: int) -> Bytes:
        if index not in cache:
            cache[index] = normalised(stream.item(index), bgr=bgr)
        return cache[index]

    written: list[Path] = []
    channels, k = result.values.shape
    last_use = {int(i): c for c, row in enumerate(result.indices) for i in row}
    for channel in range(channels):
        images, patches, labels = [], [], []
        for rank in range(k):
            index = int(result.indices[channel, rank])
            picture = shown(index)
            zoom = factor(picture.shape[0], picture.shape[1], MIN_TILE)
            labels.append(f"{result.values[channel, rank]:.4g}\n{Path(result.names[index]).name}")
            box = result.box(channel, rank)
            if box is None:
                images.append(_rgb(picture))
                continue
            images.append(outlined(picture, box.begin, box.end, zoom))
            assert result.receptive is not None
            tile = np.full((*result.receptive.size, 3), 128, np.uint8)
            whole = result.receptive.box(*map(int, result.positions[channel, rank]), clip=False)
            y, x = (b - w for b, w in zip(box.begin, whole.begin, strict=True))
            crop = _rgb(picture[box.slices])
            tile[y : y + crop.shape[0], x : x + crop.shape[1]] = crop
            patches.append(tile)
        name = f"unit-{channel:04d}"
        labelled_grid(images, labels, columns=k).save(out / f"{name}-images.png")
        written.append(out / f"{name}-images.png")
        if patches:
            labelled_grid(patches, labels, columns=k).save(out / f"{name}-patches.png")
            written.append(out / f"{name}-patches.png")
        for index in set(result.indices[channel].tolist()):
            if last_use[index] == channel:
                cache.pop(index, None)
    written.append(write_json(result, out / "top-images.json"))  # last: says all is there
    return written
