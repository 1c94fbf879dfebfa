"""Grad-CAM's numpy side: the upsampling and the weights, without Caffe."""

from __future__ import annotations

import numpy as np

from protoedit.explain.cam import class_activation_map, upsample


def test_upsample_is_bilinear_with_pixel_centres_aligned() -> None:
    small = np.array([[0.0, 4.0], [8.0, 12.0]])
    big = upsample(small, 4, 4)
    # output centres at source coordinates -0.25 (clamped to 0), 0.25, 0.75, 1.25 (to 1)
    np.testing.assert_allclose(big[0], [0, 1, 3, 4])
    np.testing.assert_allclose(big[:, 0], [0, 2, 6, 8])
    np.testing.assert_allclose(upsample(np.full((3, 5), 7.0), 9, 10), 7.0)
    np.testing.assert_array_equal(upsample(small, 2, 2), small)


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
