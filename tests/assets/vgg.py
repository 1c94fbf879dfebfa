"""A VGG-19-sized model with random weights, written in tmp by tests and the weights bench.

VGG-19's parameter shapes (143.7 M values, a 548 MiB ``.caffemodel``) are what the real model
file has; its values do not matter to reading, writing or memory use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: (layer, input channels or features, outputs, kernel) in VGG-19's order (kernel 0: fully
#: connected).
_LAYERS = [
    *(
        (f"conv{stage}_{k}", cin if k == 1 else cout, cout, 3)
        for stage, cin, cout, count in (
            (1, 3, 64, 2),
            (2, 64, 128, 2),
            (3, 128, 256, 4),
            (4, 256, 512, 4),
            (5, 512, 512, 4),
        )
        for k in range(1, count + 1)
    ),
    ("fc6", 512 * 7 * 7, 4096, 0),
    ("fc7", 4096, 4096, 0),
    ("fc8", 4096, 1000, 0),
]


def vgg19_shapes() -> dict[str, list[tuple[int, ...]]]:
    """Each learning layer's blob shapes (weight, bias), in file order."""
    return {
        name: [(outs, ins, k, k) if k else (outs, ins), (outs,)] for name, ins, outs, k in _LAYERS
    }


def write_random_vgg19(path: Path, seed: int = 0) -> Path:
    """A VGG-19-sized caffemodel at ``path`` with seeded random values (about 550 MB)."""
    from protoedit.weights import Weights, save

    rng = np.random.default_rng(seed)
    arrays = {
        name: [rng.standard_normal(shape, dtype=np.float32) for shape in shapes]
        for name, shapes in vgg19_shapes().items()
    }
    types = {name: "Convolution" if name.startswith("conv") else "InnerProduct" for name in arrays}
    save(Weights.from_arrays(arrays, types=types), path)
    return path
