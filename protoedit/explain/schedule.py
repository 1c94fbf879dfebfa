"""The image schedule of activation maximisation: the valid range of each channel, the
octaves (coarse to fine sizes) and tiling, resizing between them, and the start images."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from protoedit.explain.objectives import AnyObjective
from protoedit.explain.preprocess import Preprocess, fit_image, mean_array
from protoedit.explain.settings import Settings

Array = npt.NDArray[np.float32]


def bounds(pre: Preprocess, channels: int) -> tuple[list[float], list[float]]:
    """Per input channel, the blob values of pixel 0 and 255 (the valid range after the mean)."""
    mean = mean_array(pre, (channels, 1, 1))
    per_channel = np.zeros(channels) if mean is None else mean.reshape(channels, -1).mean(axis=1)
    if mean is not None and mean.size == 1:
        per_channel = np.full(channels, float(mean.ravel()[0]))
    low = (0.0 - per_channel) * pre.scale
    high = (255.0 - per_channel) * pre.scale
    return [float(v) for v in np.minimum(low, high)], [float(v) for v in np.maximum(low, high)]


def schedule(
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


def tiled(x: Array, height: int, width: int) -> Array:
    """The tile repeated to ``height`` x ``width`` (the image is periodic under jitter)."""
    reps = (1, 1, -(-height // x.shape[2]), -(-width // x.shape[3]))
    return np.ascontiguousarray(np.tile(x, reps)[:, :, :height, :width])


def resize(x: Array, height: int, width: int) -> Array:
    """Bilinear resize of a batch N x C x H x W (each plane on its own)."""
    if x.shape[2:] == (height, width):
        return x
    planes = [fit_image(img.transpose(1, 2, 0), height, width, "resize") for img in x]
    return np.ascontiguousarray(np.stack(planes).transpose(0, 3, 1, 2), dtype=np.float32)


def start_batch(
    start: Array | None,
    shape: tuple[int, ...],
    objectives: list[AnyObjective],
    settings: Settings,
    pre: Preprocess,
    low: list[float],
    high: list[float],
) -> Array:
    """The first image of each element: the start image, or noise around the mean seeded by
    the seed and the objective (so a result does not depend on its batch)."""
    lo = np.asarray(low, np.float32).reshape(-1, *([1] * (len(shape) - 2)))
    hi = np.asarray(high, np.float32).reshape(-1, *([1] * (len(shape) - 2)))
    images = []
    for objective in objectives:
        if start is not None:
            images.append(start)
        else:
            rng = np.random.default_rng([settings.seed, *_seed_words(objective)])
            noise = rng.normal(0.0, settings.init_std * abs(pre.scale), size=shape[1:])
            images.append(np.clip(noise.astype(np.float32), lo, hi))
    return np.ascontiguousarray(np.stack(images), dtype=np.float32)


def _seed_words(objective: AnyObjective) -> list[int]:
    """A unit seeds with its channel and position (as before objectives combined); a sum
    with every term's channel, position and weight (as float32 bits)."""
    terms = objective.terms
    if len(terms) == 1 and terms[0][0] == 1.0:
        return [terms[0][1], *(terms[0][2] or ())]
    words: list[int] = []
    for weight, channel, position in terms:
        words += [int(np.float32(weight).view(np.uint32)), channel, *(position or ())]
    return words
