"""``fold-bn`` on a real model: open_nsfw's ResNet-50 (53 BatchNorm + Scale pairs, each
after a convolution without bias).  Every BatchNorm and Scale goes, the written weights fit
the folded net, and Caffe computes the same blobs on real photos (scikit-image's samples,
preprocessed as the model expects), the top-level ``prob`` included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from protoedit import load
from protoedit.caffe import Session
from protoedit.explain.preprocess import Preprocess, image_to_blob
from protoedit.rewrites import fold_bn
from protoedit.validate.equivalence import check_rewrite
from protoedit.weights import load as load_weights
from protoedit.weights import match, save

from .assets.models import CachedModel

pytestmark = [pytest.mark.caffe, pytest.mark.slow]

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def _photos(mean: tuple[float, ...]) -> np.ndarray:
    import skimage.data

    pre = Preprocess(mean=mean, fit="crop")
    return np.stack(
        [
            image_to_blob(np.asarray(getattr(skimage.data, name)(), np.float32), (3, 224, 224), pre)
            for name in PHOTOS
        ]
    )


def test_fold_bn_on_open_nsfw_resnet50(
    nsfw_model: CachedModel, caffe_session: Session, tmp_path: Path
) -> None:
    original = load(nsfw_model.deploy)
    followers = {
        layer.name for layer in original.message.layer if layer.type in ("BatchNorm", "Scale")
    }
    assert len(followers) == 106
    doc = load(nsfw_model.deploy)
    report = fold_bn(doc, load_weights(nsfw_model.weights))
    kinds = [layer.type for layer in doc.message.layer]
    assert "BatchNorm" not in kinds and "Scale" not in kinds
    assert not report.flagged
    assert {line.split("'")[1] for line in report.dropped} == followers
    folded = tmp_path / "folded.caffemodel"
    save(report.weights, folded)
    assert match(doc, load_weights(folded)).ok
    verdict = check_rewrite(
        original,
        nsfw_model.weights,
        doc,
        report,
        weights=folded,
        inputs={"data": _photos(nsfw_model.mean)},
        session=caffe_session,
    )
    assert verdict.ok, verdict.lines()
    prob = next(b for b in verdict.blobs if b.blob == "prob")
    assert prob.ok and prob.shape == (4, 2)
    assert prob.magnitude > 0.5  # a real probability, not a vacuous comparison
    assert len(verdict.blobs) > 100
