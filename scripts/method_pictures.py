"""Draw docs/saliency-methods.jpg: every saliency method of ``protoedit saliency`` on a real
photograph (scikit-image's cat, ``chelsea``) with open_nsfw's ResNet-50, class 0 (safe for
work): rows gradient, smoothgrad, integrated, gradcam, gradcam++, guided, deconvnet,
guided-gradcam; each the input, the map, the map over the input.  Grad-CAM reads
``eltwise_stage3_block2`` (the last residual block, 7 x 7); the sanity check of gradient,
gradcam and guided
(rank correlation once 4 of the top 8 layers with weights are random) is printed.

Run with the project's venv: ``python scripts/method_pictures.py [OUT.png]``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from protoedit.caffe import session
from protoedit.explain import Preprocess, method_object, sanity
from protoedit.explain.saliency_maps import LAYER_METHODS, METHODS
from protoedit.explain.sanity import parameter_layers
from protoedit.rewrites import LossHead

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test assets of the checkout: tests/assets
from tests.assets.models import NSFW_MEAN, open_nsfw  # noqa: E402

LAYER = "eltwise_stage3_block2"
LABEL_WIDTH = 120
GAP = 10
OPTIONS = {"smoothgrad": {"samples": 16}, "integrated": {"steps": 24}}


def main() -> int:
    from skimage import data

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "saliency-methods.jpg"
    model = open_nsfw()
    photo = Path(tempfile.mkdtemp()) / "chelsea.png"
    Image.fromarray(data.chelsea()).save(photo)
    pre = Preprocess(mean=NSFW_MEAN)
    rows = []
    with session() as warm:
        for method in METHODS:
            options = dict(OPTIONS.get(method, {}))
            if method in LAYER_METHODS:
                options["layer"] = LAYER
            with method_object(
                model.deploy,
                weights=model.weights,
                head=LossHead("logit", 0),
                method=method,
                preprocess=pre,
                session=warm,
                **options,
            ) as explainer:
                result = explainer.attribute(photo)
                if method in ("gradient", "gradcam", "guided"):
                    top = parameter_layers(explainer.session())[:8]  # 8 of 54: enough here
                    check = sanity(explainer, [photo], layers=top, top=4, seed=0)
                    print(f"{method}: {check.lines()[-1]}")
            picture = result.picture()
            label = Image.new("RGB", (LABEL_WIDTH, picture.shape[0]), "white")
            ImageDraw.Draw(label).text((8, picture.shape[0] // 2 - 6), method, fill="black")
            rows.append(np.concatenate([np.asarray(label), picture], axis=1))
            rows.append(np.full((GAP, rows[-1].shape[1], 3), 255, np.uint8))
            print(f"{method}: f = {result.value:.4g}", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure = Image.fromarray(np.concatenate(rows[:-1], axis=0))
    half = (figure.width // 2, figure.height // 2)  # half size: a README picture, not 3 MB
    smaller = figure.resize(half, Image.Resampling.LANCZOS)
    smaller.save(out, quality=85, optimize=True)  # JPEG by the name: photographs, 10x smaller
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
