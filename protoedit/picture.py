"""Pictures of arrays: a gradient as a PNG a person can look at (Pillow and matplotlib).

Runs in the validation child, where the ``caffe`` extra (Pillow, matplotlib) is installed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt

#: Tiles per row of the picture; more batch items start a new row.
COLUMNS = 8
_GUTTER = 4
_GUTTER_GREY = 64


def write_png(path: str | Path, rgb: npt.NDArray[np.uint8]) -> None:
    """Write an ``H x W x 3`` uint8 array as an 8-bit RGB PNG."""
    from PIL import Image

    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 array, got {rgb.shape} {rgb.dtype}")
    Image.fromarray(rgb).save(Path(path), format="PNG")


def diverging(values: npt.NDArray[np.floating], limit: float) -> npt.NDArray[np.uint8]:
    """matplotlib's ``bwr`` map: blue (negative), white (zero), red (positive), at ``+-limit``."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    if limit > 0:
        scaled = Normalize(vmin=-limit, vmax=limit, clip=True)(values)
    else:
        scaled = np.full(values.shape, 0.5)
    rgba = colormaps["bwr"](scaled, bytes=True)
    return np.ascontiguousarray(rgba[..., :3], dtype=np.uint8)


def gradient_picture(gradient: npt.NDArray[np.floating]) -> npt.NDArray[np.uint8]:
    """Tiles of the channel-summed gradient, one per batch item (``N x C x H x W`` or lower).

    One shared colour scale (the 99th percentile of |gradient|) so items compare; small
    images are enlarged by whole pixels so a 28 x 28 input is still visible.  Tiles run
    :data:`COLUMNS` to a row, with grey gutters between them.
    """
    g = np.asarray(gradient, dtype=np.float64)
    if g.ndim == 4:
        maps = g.sum(axis=1)
    elif g.ndim == 3:
        maps = g
    elif g.ndim == 2:
        maps = g[:, None, :]
    else:
        maps = g.reshape(1, 1, -1)
    limit = float(np.percentile(np.abs(maps), 99)) or float(np.abs(maps).max())
    scale = max(1, 128 // max(maps.shape[1], maps.shape[2], 1))
    height, width = maps.shape[1] * scale, maps.shape[2] * scale
    columns = min(COLUMNS, len(maps))
    rows = math.ceil(len(maps) / columns)
    picture = np.full(
        (rows * (height + _GUTTER) - _GUTTER, columns * (width + _GUTTER) - _GUTTER, 3),
        _GUTTER_GREY,
        dtype=np.uint8,
    )
    for index, item in enumerate(maps):
        top = (index // columns) * (height + _GUTTER)
        left = (index % columns) * (width + _GUTTER)
        tile = diverging(item, limit).repeat(scale, axis=0).repeat(scale, axis=1)
        picture[top : top + height, left : left + width] = tile
    return picture
