"""A labelled grid of small pictures (Pillow): one tile per unit, its label under it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

#: Tiles smaller than this are enlarged (nearest neighbour) so that 8x8 digits can be seen.
MIN_TILE = 96
_PAD = 4
_LINE = 12


def labelled_grid(
    tiles: Sequence[npt.NDArray[np.uint8]], labels: Sequence[str], columns: int | None = None
) -> Any:
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
        picture = Image.fromarray(tile.squeeze(2) if tile.shape[2] == 1 else tile).convert("RGB")
        picture = picture.resize((tile_w, tile_h), Image.Resampling.NEAREST)
        left, top = col * cell_w + _PAD, row * cell_h + _PAD
        canvas.paste(picture, (left, top))
        for k, line in enumerate(label.split("\n")):
            draw.text((left, top + tile_h + 1 + k * _LINE), line, fill="black", font=font)
    return canvas
