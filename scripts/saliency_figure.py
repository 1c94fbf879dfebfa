"""Draw docs/saliency-digits.png: the three saliency methods on held-out digits of the trained
digits net (rows: gradient, smoothgrad, integrated; each: input, map, map over the input).

Run with the project's venv: ``python scripts/saliency_figure.py [OUT.png]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from protoedit.explain import Preprocess, saliency
from protoedit.explain.saliency_maps import METHODS
from protoedit.rewrites import LossHead

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test assets of the checkout: tests/assets
from tests.assets.digits import trained_digits  # noqa: E402

DIGITS = (3, 0)  # which digits to show (the first held-out image of each)
LABEL_WIDTH = 110
GAP = 12


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "saliency-digits.png"
    model = trained_digits()
    split = np.load(model.split)
    images, labels = split["images"], split["labels"]
    pre = Preprocess(scale=1 / 255)  # the held-out blobs are pixels / 255: shown as 0-255
    rows = []
    for method in METHODS[:3]:  # gradient, smoothgrad, integrated (no layer needed)
        pictures = []
        for digit in DIGITS:
            index = int(np.flatnonzero(labels == digit)[0])
            result = saliency(
                model.deploy,
                weights=model.weights,
                image=images[index],
                head=LossHead("logit", digit),
                method=method,
                preprocess=pre,
            )
            pictures.append(result.picture())
            pictures.append(np.full((pictures[-1].shape[0], GAP * 3, 3), 255, np.uint8))
        row = np.concatenate(pictures[:-1], axis=1)
        label = Image.new("RGB", (LABEL_WIDTH, row.shape[0]), "white")
        ImageDraw.Draw(label).text((8, row.shape[0] // 2 - 6), method, fill="black")
        rows.append(np.concatenate([np.asarray(label), row], axis=1))
        rows.append(np.full((GAP, rows[-1].shape[1], 3), 255, np.uint8))
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows[:-1], axis=0)).save(out, optimize=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
