"""A saliency map as a picture: the input, the map in a matplotlib colour map, and the map
blended over the input, side by side; PNG by Pillow.

Non-negative maps (gradient magnitudes) use a sequential colour map from zero; signed maps
(integrated-gradient attributions) a diverging one centred on zero.  Both saturate at the 99th
percentile of |map| so one extreme pixel does not wash out the rest.  Each pixel's opacity
grows with its magnitude, so the image shows through where the map is weak.  Small inputs
(an 8 x 8 digit) are enlarged by whole pixels so they can be seen.
"""

from __future__ import annotations

import os

import numpy as np
import numpy.typing as npt

#: Colour maps (matplotlib names) for maps without and with negative values.
SEQUENTIAL = "inferno"
DIVERGING = "RdBu_r"
#: Smallest side of the written picture, in pixels (reached by whole-pixel enlargement).
MIN_SIDE = 256


def _limit(values: npt.NDArray[np.float64]) -> float:
    """The magnitude at which the colours saturate (0 for an all-zero map)."""
    magnitude = np.abs(values)
    return float(np.percentile(magnitude, 99)) or float(magnitude.max())


def colours(values: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``values`` (H x W) as RGB in [0, 1] (H x W x 3) and each pixel's magnitude in [0, 1]."""
    from matplotlib import colormaps

    data = np.asarray(values, dtype=np.float64)
    limit = _limit(data)
    t = np.clip(data / limit, -1.0, 1.0) if limit > 0 else np.zeros_like(data)
    if (data < 0).any():
        rgb = colormaps[DIVERGING]((t + 1.0) / 2.0)[..., :3]
    else:
        rgb = colormaps[SEQUENTIAL](t)[..., :3]
    return np.asarray(rgb, dtype=np.float64), np.abs(t)


def overlay(
    image: npt.NDArray[np.uint8], values: npt.ArrayLike, *, opacity: float = 0.85
) -> npt.NDArray[np.float64]:
    """``values`` (H x W) coloured and blended over ``image`` (H x W x C uint8, grey or RGB,
    shown grey and dimmed so the colours stand out): H x W x 3 in [0, 1]."""
    rgb, magnitude = colours(values)
    if image.shape[:2] != magnitude.shape:
        raise ValueError(f"a map of shape {magnitude.shape} for an image of shape {image.shape}")
    grey = 0.6 * image.astype(np.float64).mean(axis=2, keepdims=True) / 255.0
    alpha = opacity * magnitude[..., None] ** 0.7
    blended: npt.NDArray[np.float64] = (1.0 - alpha) * grey + alpha * rgb
    return blended


def panels(image: npt.NDArray[np.uint8], values: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Three pictures side by side: the input, the map in colour, the map over the input;
    enlarged by whole pixels when smaller than MIN_SIDE (H' x 3W' x 3 uint8)."""
    shown = image.astype(np.float64) / 255.0
    if shown.shape[2] == 1:
        shown = np.repeat(shown, 3, axis=2)
    pieces = [shown, colours(values)[0], overlay(image, values)]
    height, width = pieces[0].shape[:2]
    factor = max(1, -(-MIN_SIDE // max(1, min(height, width))))
    gap = np.ones((height * factor, max(4, factor // 4), 3))
    row = []
    for piece in pieces:
        row += [np.repeat(np.repeat(piece, factor, axis=0), factor, axis=1), gap]
    picture = np.concatenate(row[:-1], axis=1)
    out: npt.NDArray[np.uint8] = (np.clip(picture, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return out


def write_png(path: str | os.PathLike[str], rgb: npt.NDArray[np.uint8]) -> None:
    """Write an H x W x 3 uint8 array as a PNG (Pillow)."""
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(rgb)).save(path, format="PNG")
