"""Images to input blobs, the Caffe way, and back (Pillow for decoding; no Caffe).

What pycaffe's ``Transformer`` and Caffe's data layers do, in their order: decode, resize
(or scale the shorter side and centre-crop) to the Input's H x W, channels to BGR unless
``rgb``, subtract the mean (per channel, or a ``mean.binaryproto`` image), multiply by
``scale``.  Pixels stay raw 0-255 unless ``scale`` says otherwise, as the reference models
expect.  A ``.npy`` input is taken as the blob's data exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from protoedit.arguments import number
from protoedit.errors import InputError, Location
from protoedit.schema import read_binary

Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes blob data; ``mean`` is in the blob's channel order (B,G,R
    unless ``rgb``); ``mean_file`` is a BlobProto mean image (per channel when its size
    differs from the input's)."""

    rgb: bool = False
    mean: tuple[float, ...] | None = None
    mean_file: str | None = None
    scale: float = 1.0
    fit: Literal["resize", "crop"] = "resize"

    def __post_init__(self) -> None:
        """A scale of 0 would feed a blank input; NaN or infinity, a non-finite one."""
        number(self.scale, "scale", nonzero=True)
        for value in self.mean or ():
            number(value, "mean")


def read_mean_file(path: str | os.PathLike[str]) -> Array:
    """A ``mean.binaryproto`` (a serialised BlobProto) as a C x H x W array."""
    where = Location(str(path))
    blob = read_binary(path, "BlobProto", "mean file", "not a mean file (binary BlobProto)")
    if blob.HasField("shape"):
        shape = [int(d) for d in blob.shape.dim]
    else:
        shape = [int(blob.num), int(blob.channels), int(blob.height), int(blob.width)]
    values = np.asarray(blob.data if len(blob.data) else blob.double_data, dtype=np.float32)
    if not values.size or values.size != int(np.prod(shape)):
        raise InputError(f"mean file holds {values.size} values for shape {shape}", where)
    if len(shape) == 4 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 3:
        raise InputError(f"mean file has shape {shape}, expected 1 x C x H x W", where)
    return values.reshape(shape)


#: Pillow's modes of a 16-bit grey image (``convert("L")`` would clip them at 255).
_DEEP_GREY = ("I;16", "I;16B", "I;16L", "I;16N")


def finite_input(array: Array, what: str, where: Location | None = None) -> Array:
    """``array``, refused when it holds NaN or infinity (the map would be NaN, with exit 0)."""
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise InputError(f"{what} holds {bad} non-finite values (NaN or infinity)", where)
    return array


def _decode(path: str | os.PathLike[str], channels: int) -> Array:
    """Decode to H x W x C float32 in RGB order (or grey for one channel), 0-255."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode in _DEEP_GREY:  # 16 bits a pixel: kept at depth, scaled to 0-255
                deep = np.asarray(image, dtype=np.float32) * np.float32(255 / 65535)
                grey = deep[:, :, None]
                return grey if channels == 1 else np.repeat(grey, 3, axis=2)
            converted = image.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        reason = (
            "not an image Pillow can decode"
            if isinstance(exc, UnidentifiedImageError)
            else (getattr(exc, "strerror", None) or str(exc))
        )
        raise InputError(f"cannot decode image: {reason}", Location(str(path))) from None
    array = np.asarray(converted, dtype=np.float32)
    return array[:, :, None] if array.ndim == 2 else array


def fit_image(image: Array, height: int, width: int, fit: str) -> Array:
    """Resize H x W x C to ``height`` x ``width`` (bilinear); ``crop`` keeps the aspect ratio
    by scaling the shorter side and cutting the centre."""
    from PIL import Image

    h, w = image.shape[:2]
    if fit == "crop":
        factor = max(height / h, width / w)
        size = (max(width, round(w * factor)), max(height, round(h * factor)))
    else:
        size = (width, height)
    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[:, :, c], dtype=np.float32)).resize(
                size, Image.Resampling.BILINEAR
            )
        )
        for c in range(image.shape[2])
    ]
    resized = np.stack(planes, axis=2)
    top, left = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
    return resized[top : top + height, left : left + width]


def mean_array(pre: Preprocess, shape: tuple[int, int, int]) -> Array | None:
    channels, height, width = shape
    if pre.mean is not None and pre.mean_file is not None:
        raise InputError("give a mean per channel or a mean file, not both")
    if pre.mean is not None:
        if len(pre.mean) not in (1, channels):
            raise InputError(f"{len(pre.mean)} mean values for an input of {channels} channels")
        return np.asarray(pre.mean, dtype=np.float32).reshape(-1, 1, 1)
    if pre.mean_file is None:
        return None
    mean = read_mean_file(pre.mean_file)
    if mean.shape[0] != channels:
        raise InputError(
            f"the mean file has {mean.shape[0]} channels, the input {channels}",
            Location(pre.mean_file),
        )
    if mean.shape[1:] != (height, width):  # another size: its per-channel mean, as pycaffe users do
        per_channel: Array = mean.reshape(channels, -1).mean(axis=1).reshape(-1, 1, 1)
        return per_channel
    return mean


def image_to_blob(image: Array, shape: tuple[int, int, int], pre: Preprocess) -> Array:
    """An H x W x C RGB (or grey) 0-255 image to C x H x W blob data."""
    channels, height, width = shape
    if image.shape[2] != channels:
        raise InputError(f"an image of {image.shape[2]} channels for an input of {channels}")
    fitted = fit_image(image, height, width, pre.fit)
    data = fitted.transpose(2, 0, 1)
    if channels == 3 and not pre.rgb:
        data = data[::-1]
    mean = mean_array(pre, shape)
    if mean is not None:
        data = data - mean
    return np.ascontiguousarray(data * np.float32(pre.scale), dtype=np.float32)


def blob_to_image(data: npt.ArrayLike, pre: Preprocess) -> npt.NDArray[np.uint8]:
    """The inverse of :func:`image_to_blob` at the blob's size: H x W x C uint8 (RGB or grey),
    clipped to 0-255 after the mean is added back."""
    array = np.asarray(data, dtype=np.float32) / np.float32(pre.scale)
    shape = (int(array.shape[0]), int(array.shape[1]), int(array.shape[2]))
    mean = mean_array(pre, shape)
    if mean is not None:
        array = array + mean
    if shape[0] == 3 and not pre.rgb:
        array = array[::-1]
    image: npt.NDArray[np.uint8] = np.clip(array + 0.5, 0, 255).astype(np.uint8)
    return image.transpose(1, 2, 0)


def load_input(
    path: str | os.PathLike[str], shape: tuple[int, ...], pre: Preprocess = Preprocess()
) -> Array:
    """Blob data from a ``.npy`` (as is) or an image file (preprocessed to ``shape``'s C x H x W;
    a 1 x C x H x W batch comes back)."""
    where = Location(str(path))
    if str(path).lower().endswith(".npy"):
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read array: {exc}", where) from None
        return finite_input(np.asarray(array, dtype=np.float32), "the array", where)
    if len(shape) != 4:
        raise InputError(f"an image for an input of shape {list(shape)} (not N x C x H x W)", where)
    if not Path(path).is_file():
        what = "a folder, not an image" if Path(path).is_dir() else "no such file"
        raise InputError(f"cannot read image: {what}", where)
    image = _decode(path, int(shape[1]))
    return image_to_blob(image, (int(shape[1]), int(shape[2]), int(shape[3])), pre)[None]
