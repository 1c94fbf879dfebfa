"""Grad-CAM's numpy side: the upsampling and the weights, without Caffe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from protoedit.document import load
from protoedit.explain.cam import class_activation_map, upsample

from .assets.digits import FIXTURES
from .helpers import one_error_line

DEPLOY = FIXTURES / "deploy.prototxt"


def test_upsample_is_bilinear_with_pixel_centres_aligned() -> None:
    small = np.array([[0.0, 4.0], [8.0, 12.0]])
    big = upsample(small, 4, 4)
    # output centres at source coordinates -0.25 (clamped to 0), 0.25, 0.75, 1.25 (to 1)
    np.testing.assert_allclose(big[0], [0, 1, 3, 4])
    np.testing.assert_allclose(big[:, 0], [0, 2, 6, 8])
    np.testing.assert_allclose(upsample(np.full((3, 5), 7.0), 9, 10), 7.0)
    np.testing.assert_array_equal(upsample(small, 2, 2), small)


def test_upsampling_puts_each_unit_at_its_receptive_field_centre() -> None:
    """conv2 (4 x 4 over the 8 x 8 image): a unit's upsampled value peaks, equally on the
    pixels either side, at its field's centre ``2y + 1/2`` (the summary's numbers); plain
    corner-to-corner stretching would put unit 1 at 7/3 instead."""
    from protoedit.net.receptive import receptive_field

    field = receptive_field(load(DEPLOY), "conv2")
    for unit in [(1, 1), (1, 2), (2, 1), (2, 2)]:  # the edge units are clamped outwards
        one = np.zeros((4, 4))
        one[unit] = 1.0
        big = upsample(one, 8, 8)
        peak = np.argwhere(big == big.max())
        centre = field.center(*unit)
        for axis in range(2):
            want = {int(np.floor(centre[axis])), int(np.ceil(centre[axis]))} & set(range(8))
            assert set(peak[:, axis].tolist()) == want, (unit, centre, peak)


def test_gradcam_weights_are_mean_gradients_and_the_map_is_rectified() -> None:
    activation = np.stack([np.ones((2, 2)), np.arange(4.0).reshape(2, 2)])
    gradient = np.stack([np.full((2, 2), -1.0), np.full((2, 2), 0.5)])
    # alpha = (-1, 0.5): -1 + 0.5 * [[0, 1], [2, 3]] = [[-1, -0.5], [0, 0.5]] -> rectified
    np.testing.assert_allclose(class_activation_map(activation, gradient), [[0, 0], [0, 0.5]])
    # Grad-CAM++ weighs only positive gradients: channel 0 drops out, channel 1 keeps
    # sum_ij g^2 / (2 g^2 + sum A g^3) * g with g = 0.5, sum A = 6
    w = 0.25 / (0.5 + 6 * 0.125) * 0.5 * 4
    np.testing.assert_allclose(
        class_activation_map(activation, gradient, plus=True), w * activation[1]
    )


def test_rank_correlation_is_spearman_with_mean_ranks_for_ties() -> None:
    from protoedit.explain.sanity import rank_correlation, ranks

    np.testing.assert_array_equal(ranks([10, 30, 20, 20]), [0, 3, 1.5, 1.5])
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 400]) == 1.0
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert rank_correlation([1, 2, 3], [5, 5, 5]) == 0.0  # a constant map keeps no ranking
    # Pearson of the ranks [0, 1.5, 1.5] and [0, 1, 2]: 1.5 / sqrt(1.5 * 2)
    assert abs(rank_correlation([1, 2, 2], [1, 2, 3]) - 1.5 / np.sqrt(3.0)) < 1e-12


def test_saliency_refuses_layer_for_other_methods_and_needs_it_for_gradcam(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    np.save(tmp_path / "x.npy", np.zeros((1, 8, 8), np.float32))
    argv = ["saliency", str(DEPLOY), "--weights", "w", "--image", str(tmp_path / "x.npy")]
    argv += ["--class", "3", "-o", str(tmp_path / "m.png")]
    line = one_error_line(capsys, [*argv, "--layer", "conv1"])
    assert "layer applies to the gradcam, gradcam++, guided-gradcam methods only" in line
    from protoedit.cli import main

    assert main([*argv, "--method", "gradcam"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "protoedit: error: gradcam needs the layer whose maps it weighs",
        "hint: pass --layer LAYER",
    ]


def test_grad_refuses_a_blob_the_loss_does_not_reach(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    np.save(tmp_path / "x.npy", np.zeros((1, 8, 8), np.float32))
    argv = ["grad", str(DEPLOY), "--weights", "w", "--input", str(tmp_path / "x.npy")]
    line = one_error_line(capsys, [*argv, "--target", "conv2", "--blobs", "ip1"])
    assert "no blob 'ip1' in the net made for the loss" in line


def test_the_cli_offers_every_method() -> None:
    import argparse

    from protoedit.cli.saliency import add_saliency
    from protoedit.explain.saliency_maps import METHODS

    parser = argparse.ArgumentParser()
    add_saliency(parser.add_subparsers())
    sub = parser.parse_args(["saliency", "n", "--weights", "w", "--image", "i", "-o", "m.png"])
    assert sub.method == "gradient"
    actions = parser._subparsers._group_actions[0].choices["saliency"]._actions  # type: ignore[union-attr]
    choices = next(a.choices for a in actions if a.dest == "method")
    assert tuple(choices) == METHODS


def test_topk_streaming_equals_one_sort_ties_to_the_earlier_image() -> None:
    from protoedit.explain.top_images import TopK

    rng = np.random.default_rng(0)
    acts = rng.integers(0, 6, size=(50, 3, 2, 3)).astype(np.float32)  # many ties
    top = TopK(3, 4, 2)
    states = []
    for start in range(0, 50, 7):
        top.add(acts[start : start + 7], start)
        states.append(top.state())
    flat = acts.reshape(50, 3, -1)
    for channel in range(3):
        best = flat[:, channel].max(axis=1)
        want = sorted(range(50), key=lambda n: (-best[n], n))[:4]
        assert top.indices[channel].tolist() == want
        np.testing.assert_array_equal(top.values[channel], best[want])
        for rank, n in enumerate(want):
            y, x = top.positions[channel, rank]
            assert flat[n, channel].argmax() == y * 3 + x
    assert top.values.shape == (3, 4) and top.seen == 50  # the state never grows
    scores = flat.max(axis=2).astype(np.float64)
    stats = top.stats()
    np.testing.assert_allclose(stats["mean"], scores.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats["std"], scores.std(axis=0), rtol=1e-9)
    np.testing.assert_array_equal(stats["active"], (scores > 0).mean(axis=0))
    resumed = TopK.resume(states[2], 4)
    for start in range(resumed.seen, 50, 7):
        resumed.add(acts[start : start + 7], start)
    np.testing.assert_array_equal(resumed.indices, top.indices)
    np.testing.assert_array_equal(resumed.positions, top.positions)
    np.testing.assert_allclose(resumed.stats()["mean"], stats["mean"], rtol=1e-12)


def test_a_solver_names_its_training_net_by_path_or_inline(tmp_path: Path) -> None:
    from protoedit.document import load
    from protoedit.errors import InputError
    from protoedit.explain.inputs import is_solver, solver_train_net

    (tmp_path / "train.prototxt").write_text(DEPLOY.read_text())
    solver = tmp_path / "solver.prototxt"
    solver.write_text('train_net: "train.prototxt"\nbase_lr: 0.1\n')
    doc = load(solver)
    assert is_solver(doc) and not is_solver(load(DEPLOY))
    assert solver_train_net(doc).message.name == "DigitsNet"  # found beside the solver
    inline = tmp_path / "inline.prototxt"
    inline.write_text('net_param { name: "Inline" layer { name: "d" type: "Input" top: "d" } }\n')
    assert solver_train_net(load(inline)).message.name == "Inline"
    missing = tmp_path / "missing.prototxt"
    missing.write_text('net: "nowhere.prototxt"\n')
    with pytest.raises(InputError, match=r"the solver's net 'nowhere\.prototxt' is not a file"):
        solver_train_net(load(missing))


def test_the_cascade_randomises_layers_with_weights_top_first() -> None:
    from types import SimpleNamespace
    from typing import Any, cast

    from protoedit.explain.sanity import parameter_layers

    params = {
        "conv1": {"weight": [1], "bias": [1]},
        "bn1": {"mean": [1], "variance": [1], "scale_factor": [1]},
        "scale1": {"scale": [1], "bias": [1]},
        "fc": {"weight": [1]},
        "protoedit_aux_picked": {"weight": [1]},
    }
    session = cast(Any, SimpleNamespace(info={"params": params}))
    assert parameter_layers(session) == ["fc", "conv1"]
