"""move_points: keypoints follow the face's landmarks and stay put away from the face."""

from __future__ import annotations

import numpy as np
import pytest

from affectsynth.keypoints import move_points


def _grid_face():
    ys, xs = np.mgrid[40:61:5, 40:61:5]
    src = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)  # 25 landmarks, 5 px apart
    dst = src + np.where(src[:, 1:] > 50, [0.0, 3.0], [0.0, 0.0])   # the lower half moves down 3 px
    return src, dst


def test_points_on_landmarks_move_exactly_with_them():
    src, dst = _grid_face()
    np.testing.assert_allclose(move_points(src, src, dst), dst, atol=1e-12)


def test_points_between_landmarks_interpolate_and_far_points_stay():
    src, dst = _grid_face()
    moved = move_points(np.array([[47.5, 57.5], [47.5, 42.5], [200.0, 200.0], [50.0, 68.0]]), src, dst, margin_px=10)
    np.testing.assert_allclose(moved[0], [47.5, 60.5], atol=1e-9)   # among moving landmarks: their motion
    np.testing.assert_allclose(moved[1], [47.5, 42.5], atol=1e-9)   # among still ones: still
    np.testing.assert_allclose(moved[2], [200.0, 200.0])            # far from the face: untouched
    assert 68.5 < moved[3, 1] < 71.0                                # in the margin: faded motion


@pytest.mark.parametrize("points,src,dst", [
    (np.zeros((3, 3)), np.zeros((4, 2)), np.zeros((4, 2))),
    (np.zeros((3, 2)), np.zeros((4, 2)), np.zeros((5, 2))),
    (np.zeros((3, 2)), np.zeros((0, 2)), np.zeros((0, 2))),
])
def test_bad_shapes(points, src, dst):
    with pytest.raises(ValueError, match="move_points"):
        move_points(points, src, dst)


def test_no_points():
    src, dst = _grid_face()
    assert move_points(np.zeros((0, 2)), src, dst).shape == (0, 2)
