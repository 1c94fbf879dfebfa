"""The digits net trained in Caffe: accurate on held-out images, cached by content."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from protoedit.explain import CaffeSession

from .assets.digits import FILES, FIXTURES, TrainedDigits, cache_key, trained_digits

#: What "sensible" means for this net: 8x8 digits are easy, and a linear model on pixels
#: already reaches about 95%; a two-conv net trained for 1,500 steps should do better.
MIN_ACCURACY = 0.95


@pytest.mark.caffe
def test_trained_net_is_accurate_on_the_held_out_split(digits_model: TrainedDigits) -> None:
    split = np.load(digits_model.split)
    images, labels = split["images"], split["labels"]
    assert len(labels) == digits_model.held_out >= 300
    with CaffeSession(digits_model.deploy.read_text(), weights=digits_model.weights) as session:
        logits = session.run({"data": images}, backward=False, blobs=("ip2",))["blobs"]["ip2"]
    accuracy = float(np.mean(logits.argmax(axis=1) == labels))
    assert accuracy >= MIN_ACCURACY
    assert accuracy == pytest.approx(digits_model.accuracy, abs=1 / len(labels))


@pytest.mark.caffe
def test_second_call_reuses_the_cache(digits_model: TrainedDigits) -> None:
    before = digits_model.weights.stat().st_mtime_ns
    again = trained_digits()
    assert again == digits_model
    assert again.weights.stat().st_mtime_ns == before
    metrics = json.loads((again.folder / "metrics.json").read_text())
    assert metrics["iterations"] > 0 and metrics["seed"] == 1
    leftovers = [p for p in again.folder.parent.iterdir() if p.name.startswith(".digits-")]
    assert not leftovers  # no half-written temporary folders


def test_cache_key_follows_every_prototxt(tmp_path: Path) -> None:
    for name in FILES:
        shutil.copyfile(FIXTURES / name, tmp_path / name)
    original = cache_key(tmp_path)
    assert cache_key(FIXTURES) == original
    keys = {original}
    for name in FILES:
        path = tmp_path / name
        text = path.read_text()
        path.write_text(text + "\n# changed\n")
        keys.add(cache_key(tmp_path))
        path.write_text(text)
    assert len(keys) == len(FILES) + 1
    assert cache_key(tmp_path) == original
