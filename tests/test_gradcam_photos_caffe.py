"""Grad-CAM and the gradient on open_nsfw, with a real photograph pasted at a known place.

The ground truth is the pasted box: the canvas around it is open_nsfw's mean colour, which
the net sees as an all-zero blob, so nothing outside the box carries any image content.  Each
photograph goes to two places mirrored through the image centre (upper left, lower right),
neither holding the centre: the same map's mass in the empty box at the other place is the
control.  A map biased to the centre, or spread evenly, holds about as much in either box."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protoedit.caffe import Session

SIDE, PHOTO = 224, 96  # open_nsfw's input; the pasted photograph's side (18 % of the area)
PLACES = {"upper-left": (12, 12), "lower-right": (116, 116)}  # mirrored: 12 + 96 + 116 = 224
LAST, EARLIER = "eltwise_stage3_block2", "eltwise_stage2_block5"  # 7 x 7 and 14 x 14


def _box(place: str) -> Any:
    mask = np.zeros((SIDE, SIDE), bool)
    y, x = PLACES[place]
    mask[y : y + PHOTO, x : x + PHOTO] = True
    return mask


def _canvas(photo: str, place: str, folder: Path) -> Path:
    """``photo`` (scikit-image) resized into the box at ``place`` on the mean colour."""
    from PIL import Image
    from skimage import data

    from .assets.models import NSFW_MEAN

    picture = Image.fromarray(getattr(data, photo)()).resize((PHOTO, PHOTO), Image.BILINEAR)
    background = tuple(int(v) for v in reversed(NSFW_MEAN))  # the mean is B, G, R
    canvas = Image.new("RGB", (SIDE, SIDE), background)
    y, x = PLACES[place]
    canvas.paste(picture, (x, y))
    path = folder / f"{photo}-{place}.png"
    canvas.save(path)
    return path


def _object_over_control(saliency: Any, place: str) -> float:
    """The positive map's mass in the photograph's box over its mass in the mirrored box."""
    positive = np.maximum(np.asarray(saliency, np.float64), 0)
    other = next(p for p in PLACES if p != place)
    return float(positive[_box(place)].sum() / max(positive[_box(other)].sum(), 1e-300))


@pytest.mark.caffe
@pytest.mark.slow  # open_nsfw's ResNet-50: eight forward/backward passes at 224 x 224
@pytest.mark.parametrize("photo", ["chelsea", "coffee"])
def test_gradcam_mass_lies_on_a_pasted_photograph(
    photo: str, nsfw_model: Any, caffe_session: Session, tmp_path: Path
) -> None:
    """Grad-CAM of the SFW class score (open_nsfw's logit 0, pre-softmax, as the paper
    asks): at the last stage (the layer Grad-CAM is meant for) and one stage earlier, the
    photograph's box holds at least twice the positive mass of an equal empty box at the
    mirrored place, and the map's maximum lies in the photograph.  The plain gradient (the
    same backward pass) is known to be diffuse: it must only hold more on the photograph."""
    from protoedit.explain.cam import GradCAM
    from protoedit.explain.preprocess import Preprocess
    from protoedit.rewrites import LossHead

    from .assets.models import NSFW_MEAN

    common: dict[str, Any] = {
        "weights": nsfw_model.weights,
        "head": LossHead(kind="logit", channel=0),
        "target": "fc_nsfw",
        "preprocess": Preprocess(mean=NSFW_MEAN),
        "session": caffe_session,
    }
    with (
        GradCAM(nsfw_model.deploy, layer=LAST, **common) as last,
        GradCAM(nsfw_model.deploy, layer=EARLIER, **common) as earlier,
    ):
        for place in PLACES:
            path = _canvas(photo, place, tmp_path)
            for cam in (last, earlier):
                result = cam.attribute(path)
                assert result.map.shape == (SIDE, SIDE)
                ratio = _object_over_control(result.map, place)
                assert ratio >= 2, (photo, place, cam.layer, ratio)
                peak = np.unravel_index(int(np.argmax(result.map)), result.map.shape)
                assert _box(place)[peak], (photo, place, cam.layer, peak)
                if cam is last:
                    gradient_map = np.abs(result.gradient).max(axis=0)
                    assert _object_over_control(gradient_map, place) > 1, (photo, place)
