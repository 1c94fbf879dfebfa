"""Pictures of arrays, for people to look at: PNG writing, colour scaling, whole-pixel
enlargement, the gradient tiles of ``validate``, the saliency panels and the labelled grid of
``visualize``.  Pillow and matplotlib (the ``caffe`` extra) are imported on use.

Colours saturate at the 99th percentile of |values| (:func:`limit`), so that one extreme
pixel does not wash out the rest.  Non-negative maps (gradient magnitudes) use a sequential
colour map from zero; signed maps a diverging one centred on zero.  Small pictures (an 8 x 8
digit) are enlarged by whole pixels (:func:`enlarge`) so they can be seen.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

#: Tiles per row of the gradient picture; more batch items start a new row.
COLUMNS = 8
_GUTTER = 4
_GUTTER_GREY = 64
#: Colour maps (matplotlib names) for saliency maps without and with negative values.
SEQUENTIAL = "inferno"
DIVERGING = "RdBu_r"
#: Smallest side of a saliency picture, in pixels (reached by whole-pixel enlargement).
MIN_SIDE = 256
#: Grid tiles smaller than this are enlarged so that 8x8 digits can be seen.
MIN_TILE = 96
_PAD = 4
_LINE = 12
_BAR = 10  # height of a colour bar
_FRAME_GREY = 190  # the frame around each grid tile

Floats = npt.NDArray[np.float64]
Bytes = npt.NDArray[np.uint8]


def write_png(path: str | os.PathLike[str], rgb: Bytes) -> None:
    """Write an ``H x W x 3`` uint8 array as an 8-bit RGB PNG."""
    from PIL import Image

    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 array, got {rgb.shape} {rgb.dtype}")
    Image.fromarray(np.ascontiguousarray(rgb)).save(path, format="PNG")


def limit(values: npt.ArrayLike) -> float:
    """The magnitude at which colours saturate: the 99th percentile of |values|, or their
    maximum when that is 0 (a sparse map); 0 for an all-zero map."""
    magnitude = np.abs(np.asarray(values, dtype=np.float64))
    return float(np.percentile(magnitude, 99)) or float(magnitude.max())


def factor(height: int, width: int, side: int) -> int:
    """The whole-pixel enlargement that brings a picture's smaller side to ``side``."""
    return max(1, -(-side // max(1, min(height, width))))


def enlarge(picture: npt.NDArray[Any], by: int) -> npt.NDArray[Any]:
    """Each pixel of ``picture`` (H x W [x C]) as a ``by`` x ``by`` block."""
    return np.repeat(np.repeat(picture, by, axis=0), by, axis=1) if by > 1 else picture


def normalised(data: npt.ArrayLike, bgr: bool = False) -> Bytes:
    """Blob data (C x H x W, as fed to a net) as a picture stretched to its own range:
    H x W x C uint8, its minimum black and its maximum white; ``bgr``: three channels in
    Caffe's BGR order, shown as RGB.  A constant blob is mid-grey."""
    array = np.asarray(data, dtype=np.float64)
    low, high = float(array.min()), float(array.max())
    scaled = (array - low) / (high - low) if high > low else np.full(array.shape, 0.5)
    if bgr and scaled.shape[0] == 3:
        scaled = scaled[::-1]
    out: Bytes = (scaled * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0)
    return np.ascontiguousarray(out)


def diverging(values: npt.NDArray[np.floating], at: float) -> Bytes:
    """matplotlib's ``bwr`` map: blue (negative), white (zero), red (positive), at ``+-at``."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    if at > 0:
        scaled = Normalize(vmin=-at, vmax=at, clip=True)(values)
    else:
        scaled = np.full(values.shape, 0.5)
    rgba = colormaps["bwr"](scaled, bytes=True)
    return np.ascontiguousarray(rgba[..., :3], dtype=np.uint8)


def gradient_picture(gradient: npt.NDArray[np.floating]) -> Bytes:
    """Tiles of the channel-summed gradient, one per batch item (``N x C x H x W`` or lower).

    One shared colour scale (:func:`limit`) so items compare; small images are enlarged by
    whole pixels so a 28 x 28 input is still visible.  Tiles run :data:`COLUMNS` to a row,
    with grey gutters between them.
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
    at = limit(maps)
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
        picture[top : top + height, left : left + width] = enlarge(diverging(item, at), scale)
    return picture


def colours(values: npt.ArrayLike) -> tuple[Floats, Floats]:
    """``values`` (H x W) as RGB in [0, 1] (H x W x 3) and each pixel's magnitude in [0, 1]:
    sequential for a non-negative map, diverging for a signed one."""
    from matplotlib import colormaps

    data = np.asarray(values, dtype=np.float64)
    at = limit(data)
    t = np.clip(data / at, -1.0, 1.0) if at > 0 else np.zeros_like(data)
    if (data < 0).any():
        rgb = colormaps[DIVERGING]((t + 1.0) / 2.0)[..., :3]
    else:
        rgb = colormaps[SEQUENTIAL](t)[..., :3]
    return np.asarray(rgb, dtype=np.float64), np.abs(t)


def overlay(image: Bytes, values: npt.ArrayLike, *, opacity: float = 0.85) -> Floats:
    """``values`` (H x W) coloured and blended over ``image`` (H x W x C uint8, grey or RGB,
    shown grey and dimmed so the colours stand out): H x W x 3 in [0, 1]; each pixel's
    opacity grows with its magnitude, so the image shows through where the map is weak."""
    rgb, magnitude = colours(values)
    if image.shape[:2] != magnitude.shape:
        raise ValueError(f"a map of shape {magnitude.shape} for an image of shape {image.shape}")
    grey = 0.6 * image.astype(np.float64).mean(axis=2, keepdims=True) / 255.0
    alpha = opacity * magnitude[..., None] ** 0.7
    blended: Floats = (1.0 - alpha) * grey + alpha * rgb
    return blended


def panels(image: Bytes, values: npt.ArrayLike) -> Bytes:
    """Three pictures side by side: the input, the map in colour, the map over the input;
    enlarged by whole pixels when smaller than MIN_SIDE (H' x 3W' x 3 uint8)."""
    shown = image.astype(np.float64) / 255.0
    if shown.shape[2] == 1:
        shown = np.repeat(shown, 3, axis=2)
    pieces = [shown, colours(values)[0], overlay(image, values)]
    height, width = pieces[0].shape[:2]
    by = factor(height, width, MIN_SIDE)
    gap = np.ones((height * by, max(4, by // 4), 3))
    row = []
    for piece in pieces:
        row += [enlarge(piece, by), gap]
    picture = np.concatenate(row[:-1], axis=1)
    out: Bytes = (np.clip(picture, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return out


def captioned(picture: Bytes, title: str, values: npt.ArrayLike) -> Bytes:
    """``picture`` (from :func:`panels`) with ``title`` above it and, below it, the colour bar
    of ``values`` with its scale: where colours saturate (:func:`limit`) and what the ends
    mean (H'' x W x 3 uint8)."""
    from matplotlib import colormaps
    from PIL import Image, ImageDraw, ImageFont

    data = np.asarray(values, dtype=np.float64)
    at = limit(data)
    signed = bool((data < 0).any())
    height, width = picture.shape[:2]
    ramp = np.linspace(0.0, 1.0, width)
    bar = colormaps[DIVERGING if signed else SEQUENTIAL](ramp)[..., :3]
    bar_rows = (np.repeat(bar[None], _BAR, axis=0) * 255.0 + 0.5).astype(np.uint8)
    top, below = _LINE + 2 * _PAD, _PAD + _BAR + _LINE + _PAD
    canvas = Image.new("RGB", (width, top + height + below), "white")
    canvas.paste(Image.fromarray(np.ascontiguousarray(picture)), (0, top))
    canvas.paste(Image.fromarray(bar_rows), (0, top + height + _PAD))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.text((_PAD, _PAD), title, fill="black", font=font)
    low = f"{-at:.3g}" if signed else "0"
    scale = f"{low} .. {at:.3g} (colours saturate at the 99th percentile of |map|)"
    draw.text((_PAD, top + height + _PAD + _BAR + 1), scale, fill="black", font=font)
    out: Bytes = np.asarray(canvas, dtype=np.uint8)
    return out


def labelled_grid(tiles: Sequence[Bytes], labels: Sequence[str], columns: int | None = None) -> Any:
    """An RGB ``PIL.Image``: the H x W x C uint8 ``tiles`` in rows, each ``label`` (lines
    split on newlines) printed under its tile."""
    from PIL import Image, ImageDraw, ImageFont

    if not tiles:
        raise ValueError("no tiles")
    columns = columns or max(1, math.ceil(math.sqrt(len(tiles))))
    rows = math.ceil(len(tiles) / columns)
    height, width = tiles[0].shape[:2]
    zoom = max(1, math.ceil(MIN_TILE / max(height, width)))
    tile_h, tile_w = height * zoom, width * zoom
    lines = max(label.count("\n") + 1 for label in labels)
    cell_h, cell_w = tile_h + lines * _LINE + 2 * _PAD, tile_w + 2 * _PAD
    canvas = Image.new("RGB", (columns * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for n, (tile, label) in enumerate(zip(tiles, labels, strict=True)):
        row, col = divmod(n, columns)
        rgb = np.repeat(tile, 3, axis=2) if tile.shape[2] == 1 else tile
        left, top = col * cell_w + _PAD, row * cell_h + _PAD
        canvas.paste(Image.fromarray(np.ascontiguousarray(enlarge(rgb, zoom))), (left, top))
        # a thin frame in the padding: an all-white tile stays visible on the white page
        frame = (left - 1, top - 1, left + tile_w, top + tile_h)
        draw.rectangle(frame, outline=(_FRAME_GREY,) * 3)
        for k, line in enumerate(label.split("\n")):
            draw.text((left, top + tile_h + 1 + k * _LINE), line, fill="black", font=font)
    return canvas
