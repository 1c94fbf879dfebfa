"""Pictures of arrays: a gradient as a PNG a person can look at (numpy and zlib only)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt


def write_png(path: str | Path, rgb: npt.NDArray[np.uint8]) -> None:
    """Write an ``H x W x 3`` uint8 array as an 8-bit RGB PNG."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 array, got {rgb.shape} {rgb.dtype}")
    height, width, _ = rgb.shape
    raw = np.zeros((height, width * 3 + 1), dtype=np.uint8)  # filter byte 0 on each row
    raw[:, 1:] = rgb.reshape(height, width * 3)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
    png += chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b"")
    Path(path).write_bytes(png)


def diverging(values: npt.NDArray[np.floating], limit: float) -> npt.NDArray[np.uint8]:
    """Blue (negative) - white (zero) - red (positive), saturating at ``+-limit``."""
    t = np.clip(values / limit, -1.0, 1.0) if limit > 0 else np.zeros_like(values)
    rgb = np.empty((*values.shape, 3), dtype=np.float64)
    pos, neg = np.clip(t, 0, 1), np.clip(-t, 0, 1)
    rgb[..., 0] = 1.0 - neg  # red stays 1 on the positive side
    rgb[..., 1] = 1.0 - np.maximum(pos, neg)
    rgb[..., 2] = 1.0 - pos
    return (rgb * 255 + 0.5).astype(np.uint8)


def gradient_picture(
    gradient: npt.NDArray[np.floating], max_items: int = 8
) -> npt.NDArray[np.uint8]:
    """Tile of the channel-summed gradient of each batch item (``N x C x H x W`` or lower rank).

    One shared colour scale (the 99th percentile of |gradient|) so items compare; small
    images are enlarged by whole pixels so a 28 x 28 input is still visible.
    """
    g = np.asarray(gradient, dtype=np.float64)
    if g.ndim == 4:
        maps = g[:max_items].sum(axis=1)
    elif g.ndim == 3:
        maps = g[:max_items]
    elif g.ndim == 2:
        maps = g[:max_items, None, :]
    else:
        maps = g.reshape(1, 1, -1)
    limit = float(np.percentile(np.abs(maps), 99)) or float(np.abs(maps).max())
    scale = max(1, 128 // max(maps.shape[1], maps.shape[2], 1))
    tiles = []
    for item in maps:
        tile = diverging(item, limit).repeat(scale, axis=0).repeat(scale, axis=1)
        tiles.append(tile)
        tiles.append(np.full((tile.shape[0], 4, 3), 64, dtype=np.uint8))  # grey gutter
    return np.concatenate(tiles[:-1], axis=1)
