"""PNG pictures of gradients: decodable, right size, right colours."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from protoedit.picture import diverging, gradient_picture, write_png


def _read_png(path: Path) -> np.ndarray:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body)
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    rows = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, width * 3 + 1)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(height, width, 3)


def test_png_round_trips(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    write_png(tmp_path / "x.png", rgb)
    assert np.array_equal(_read_png(tmp_path / "x.png"), rgb)


def test_diverging_colours() -> None:
    rgb = diverging(np.array([-1.0, 0.0, 1.0]), 1.0)
    assert rgb.tolist() == [[0, 0, 255], [255, 255, 255], [255, 0, 0]]


def test_gradient_picture_tiles_items_and_enlarges_small_inputs() -> None:
    grad = np.zeros((2, 3, 16, 16))
    grad[0, :, 0, 0] = 1.0
    picture = gradient_picture(grad)
    assert picture.shape == (128, 2 * 128 + 4, 3)  # 16 px enlarged 8x, a 4 px gutter
    assert picture[0, 0].tolist() == [255, 0, 0]  # the positive pixel is red
    assert picture[127, 127].tolist() == [255, 255, 255]  # zero is white
