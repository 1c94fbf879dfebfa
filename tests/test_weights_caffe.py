"""The arrays protoedit reads without Caffe are, bit for bit, what pycaffe loads."""

from __future__ import annotations

import numpy as np
import pytest

from protoedit import load
from protoedit.caffe import Session
from protoedit.explain.session import CaffeSession
from protoedit.weights import load as load_weights
from tests.assets.models import CachedModel


@pytest.mark.caffe
def test_open_nsfw_arrays_equal_pycaffe_params_bitwise(
    nsfw_model: CachedModel, caffe_session: Session
) -> None:
    """Every parameter of open_nsfw (convolutions without bias, BatchNorm statistics with
    their scale factor, Scale, InnerProduct) as ``net.params`` holds it after ``copy_from``."""
    doc = load(nsfw_model.deploy)
    ours = load_weights(nsfw_model.weights).named(doc)
    with CaffeSession(
        nsfw_model.deploy.read_text(), weights=nsfw_model.weights, session=caffe_session
    ) as net:
        theirs = {
            f"{layer}/{role}": array
            for layer, roles in net.get_params().items()
            for role, array in roles.items()
        }
    assert list(theirs) == list(ours)
    assert {key.rpartition("/")[2] for key in ours} >= {"weight", "mean", "scale_factor", "bias"}
    for key, array in ours.items():
        assert array.dtype == theirs[key].dtype == np.float32, key
        assert array.shape == theirs[key].shape, key
        assert np.array_equal(array.view(np.uint32), theirs[key].view(np.uint32)), key
