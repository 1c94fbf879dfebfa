"""PNG pictures of gradients: decodable (by Pillow), right size, right colours, every item."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from protoedit.picture import COLUMNS, diverging, gradient_picture, write_png

Image = pytest.importorskip("PIL.Image", reason="Pillow comes with the caffe extra")


def test_png_round_trips(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    write_png(tmp_path / "x.png", rgb)
    with Image.open(tmp_path / "x.png") as image:
        assert image.format == "PNG" and image.mode == "RGB"
        assert np.array_equal(np.asarray(image), rgb)


def test_write_png_refuses_what_is_not_rgb(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        write_png(tmp_path / "x.png", np.zeros((5, 7), dtype=np.uint8))


def test_diverging_colours_are_blue_white_red() -> None:
    rgb = diverging(np.array([-2.0, -1.0, 0.0, 1.0, 2.0]), 1.0)
    assert rgb[0].tolist() == rgb[1].tolist() == [0, 0, 255]  # saturates beyond the limit
    assert rgb[3].tolist() == rgb[4].tolist() == [255, 0, 0]
    assert rgb[2].min() >= 250  # zero is white (bwr's centre entry)


def test_gradient_picture_tiles_items_and_enlarges_small_inputs() -> None:
    grad = np.zeros((2, 3, 16, 16))
    grad[0, :, 0, 0] = 1.0
    picture = gradient_picture(grad)
    assert picture.shape == (128, 2 * 128 + 4, 3)  # 16 px enlarged 8x, a 4 px gutter
    assert picture[0, 0].tolist() == [255, 0, 0]  # the positive pixel is red
    assert picture[127, 127].min() >= 250  # zero is white
    assert picture[0, 130].tolist() == [64, 64, 64]  # the gutter


def test_every_batch_item_gets_a_tile() -> None:
    # A batch of 10 makes 10 tiles: a full row of COLUMNS and a second row with the rest.
    grad = np.zeros((10, 1, 16, 16))
    grad[:, 0, 0, 0] = -1.0  # one negative pixel at each tile's corner
    picture = gradient_picture(grad)
    assert picture.shape == (2 * 128 + 4, COLUMNS * 128 + (COLUMNS - 1) * 4, 3)
    corners = [
        picture[(i // COLUMNS) * 132, (i % COLUMNS) * 132].tolist() for i in range(len(grad))
    ]
    assert corners == [[0, 0, 255]] * 10
    assert picture[132, 2 * 132].tolist() == [64, 64, 64]  # no 11th tile: background
