"""Per-channel affine maps (``y = a * x + b`` on axis 1) and folding them into the weights
of the linear layer before them: the arithmetic of ``fold-bn``, on numpy arrays only.

Caffe's BatchNorm in its global-statistics mode is such a map: it divides the stored mean
and variance by the stored ``scale_factor`` (a factor of 0 stands for 0, not for a division
by zero: the mean and the variance are then taken as 0), adds ``eps`` to the variance and
computes ``(x - mean) / sqrt(variance + eps)``.  Scale is ``x * scale (+ bias)``.  The
composition is computed in float64 and rounded to float32 once, at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Array = NDArray[np.float64]


@dataclass(frozen=True)
class Affine:
    """``y = a * x + b`` per channel (``a`` and ``b`` of one value per channel)."""

    a: Array
    b: Array

    @staticmethod
    def identity(channels: int) -> Affine:
        """The map that changes nothing."""
        import numpy as np

        return Affine(np.ones(channels), np.zeros(channels))

    def then(self, other: Affine) -> Affine:
        """This map followed by ``other``."""
        return Affine(other.a * self.a, other.a * self.b + other.b)


def batch_norm(
    mean: NDArray[np.generic], variance: NDArray[np.generic], factor: float, eps: float
) -> Affine:
    """Caffe's BatchNorm with stored statistics as an affine map.

    Raises ``ValueError`` when some channel's ``variance + eps`` is not positive (Caffe's
    output is then infinite or NaN: nothing to fold).
    """
    import numpy as np

    multiplier = 0.0 if factor == 0 else 1.0 / float(np.float32(factor))
    m = mean.astype(np.float64).reshape(-1) * multiplier
    v = variance.astype(np.float64).reshape(-1) * multiplier + float(np.float32(eps))
    if not np.all(v > 0):
        bad = int(np.argmin(v))
        raise ValueError(f"channel {bad} has variance + eps = {v[bad]:g}, not positive")
    inv = 1.0 / np.sqrt(v)
    return Affine(inv, -m * inv)


def scale(
    multipliers: NDArray[np.generic], offsets: NDArray[np.generic] | None, channels: int
) -> Affine:
    """Caffe's Scale on axis 1 (one multiplier per channel, or one for all: ``num_axes: 0``)."""
    import numpy as np

    a = np.broadcast_to(multipliers.astype(np.float64).reshape(-1), (channels,))
    b = (
        np.zeros(channels)
        if offsets is None
        else np.broadcast_to(offsets.astype(np.float64).reshape(-1), (channels,))
    )
    return Affine(a.copy(), b.copy())


def fold_into(
    kind: str,
    weight: NDArray[np.generic],
    bias: NDArray[np.generic] | None,
    affine: Affine,
    *,
    group: int = 1,
    transpose: bool = False,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """The weight and bias of a linear layer followed by ``affine``, as float32.

    ``kind`` is the layer's shape rule (``conv``, ``deconv``, ``inner_product``).  The axis
    of output channels differs: a Convolution's weight is ``(out, in/group, kh, kw)``; a
    Deconvolution's is ``(in, out/group, kh, kw)``, so input channel ``i`` of group
    ``i // (in/group)`` feeds output ``group_index * out/group + j`` through ``weight[i, j]``;
    an InnerProduct's is ``(out, in)``, or ``(in, out)`` with ``transpose``.
    """
    import numpy as np

    w = weight.astype(np.float64)
    channels = affine.a.shape[0]
    if kind == "conv":
        if w.shape[0] != channels:
            raise ValueError(f"a Convolution weight of shape {w.shape} has not {channels} outputs")
        factor = affine.a.reshape((channels,) + (1,) * (w.ndim - 1))
    elif kind == "deconv":
        inputs, per_group = w.shape[0], w.shape[1]
        if inputs % group or per_group * group != channels:
            raise ValueError(
                f"a Deconvolution weight of shape {w.shape} with group {group} does not give "
                f"{channels} outputs"
            )
        out = (np.arange(inputs)[:, None] // (inputs // group)) * per_group + np.arange(per_group)
        factor = affine.a[out].reshape(out.shape + (1,) * (w.ndim - 2))
    elif kind == "inner_product":
        w = w.reshape((-1, channels) if transpose else (channels, -1))
        factor = affine.a[None, :] if transpose else affine.a[:, None]
    else:
        raise ValueError(f"cannot fold into a layer of shape rule {kind!r}")
    c = np.zeros(channels) if bias is None else bias.astype(np.float64).reshape(-1)
    return (w * factor).astype(np.float32), (affine.a * c + affine.b).astype(np.float32)
