"""``protoedit weights diff``: two weights files blob by blob, matched by ``layer/role``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from protoedit.weights.model import Array, Shape, Weights

#: Values compared per step: a 400 MB blob is not doubled into float64 all at once.
_STEP = 1 << 22


@dataclass(frozen=True)
class BlobDifference:
    """One blob in both files: its shapes, and where they agree the largest absolute and
    relative differences (``|a - b| / max(|a|, |b|)``, 0 where both are 0)."""

    key: str
    shape_a: Shape
    shape_b: Shape
    max_abs: float | None = None  # None: the shapes differ
    max_rel: float | None = None
    equal: bool = False  # bitwise (NaN equal to NaN)


@dataclass
class WeightsDiff:
    """Every blob of either file: compared, or present in one file only."""

    blobs: list[BlobDifference] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        """Both files hold the same blobs with the same values."""
        return not (self.only_a or self.only_b) and all(b.equal for b in self.blobs)


def _differences(a: Array, b: Array) -> tuple[float, float, bool]:
    """Largest absolute and relative difference, and bitwise equality."""
    left, right = a.reshape(-1), b.reshape(-1)
    worst_abs = worst_rel = 0.0
    for start in range(0, left.size, _STEP):
        x = left[start : start + _STEP].astype(np.float64)
        y = right[start : start + _STEP].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            gap = np.abs(x - y)
            gap[(x == y) | (np.isnan(x) & np.isnan(y))] = 0.0  # equal infinities, both NaN
            gap[np.isnan(gap)] = np.inf  # NaN on one side only
            rel = np.where(gap == 0, 0.0, gap / np.maximum(np.abs(x), np.abs(y)))
            rel[np.isnan(rel)] = np.inf
        if gap.size:
            worst_abs = max(worst_abs, float(np.max(gap)))
            worst_rel = max(worst_rel, float(np.max(rel)))
    equal = a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    return worst_abs, worst_rel, bool(equal)


def compare(a: Weights, b: Weights) -> WeightsDiff:
    """How ``b`` differs from ``a``, blob by blob (roles from each file's stored layers)."""
    left, right = a.named(), b.named()
    found = WeightsDiff(
        only_a=[k for k in left if k not in right], only_b=[k for k in right if k not in left]
    )
    for key, x in left.items():
        if key not in right:
            continue
        y = right[key]
        if x.shape != y.shape:
            found.blobs.append(BlobDifference(key, x.shape, y.shape))
            continue
        worst_abs, worst_rel, equal = _differences(x, y)
        found.blobs.append(BlobDifference(key, x.shape, y.shape, worst_abs, worst_rel, equal))
    return found
