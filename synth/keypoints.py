"""Keypoints that move with a re-rendered face: points on the face follow its landmarks' motion.

A synthesised expression moves the skin (a smile lifts the mouth corners, surprise drops the jaw)
and the photo around the face is warped with it, faded out over a margin. A point a user marked
on the photo (a landmark of their own detector, a mouth corner) must move the same way, or the
keypoint labels no longer sit on the face. `move_points` interpolates the displacement of the
face's 468 landmarks (before -> after) at the points, so a point on a landmark moves exactly as
that landmark and a point away from the face stays where it was.
"""

from __future__ import annotations

import numpy as np

__all__ = ["move_points"]


def move_points(points: np.ndarray, src: np.ndarray, dst: np.ndarray, *, margin_px: float = 12.0,
                k: int = 4) -> np.ndarray:
    """Move points by the motion of the nearest face landmarks.

    Each point takes the inverse-squared-distance weighted displacement ``dst - src`` of its
    ``k`` nearest source landmarks (a point on a landmark takes exactly that landmark's motion).
    Beyond the face (farther from every landmark than the landmarks are from each other) the
    motion fades to zero over ``margin_px``, as the photo's warp does.

    Args:
        points: [N, 2] float pixel coordinates (x, y) in the input image.
        src: [L, 2] float landmarks of the face in the input image, pixels.
        dst: [L, 2] float the same landmarks in the output image, pixels.
        margin_px: distance beyond the face over which the motion fades out, pixels.
        k: landmarks each point's motion is interpolated from.

    Returns:
        [N, 2] float64 moved points (a new array).

    Raises:
        ValueError: shapes that are not [N, 2] / [L, 2] with matching L, or bad ``k`` / ``margin_px``.

    Example:
        >>> src = np.array([[0.0, 0.0], [10.0, 0.0]])
        >>> move_points(np.array([[0.0, 0.0]]), src, src + [1.0, 2.0]).tolist()
        [[1.0, 2.0]]
    """
    pts = np.asarray(points, dtype=np.float64)
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"move_points: points must be [N, 2], got {list(pts.shape)}")
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape or len(src) == 0:
        raise ValueError(f"move_points: src and dst must be the same [L, 2] with L >= 1, got "
                         f"{list(src.shape)} and {list(dst.shape)}")
    if k < 1 or not margin_px > 0:
        raise ValueError(f"move_points: need k >= 1 and margin_px > 0, got k={k}, margin_px={margin_px}")
    if len(pts) == 0:
        return pts.copy()
    k = min(k, len(src))
    disp = dst - src
    d2 = ((pts[:, None, :] - src[None, :, :]) ** 2).sum(-1)  # [N, L]
    near = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < len(src) else np.broadcast_to(np.arange(len(src)), d2.shape)
    dn = np.take_along_axis(d2, near, axis=1)  # [N, k]
    w = 1.0 / np.maximum(dn, 1e-12)
    on = dn.min(1) < 1e-10  # on a landmark: that landmark's motion exactly
    w[on] = (dn[on] < 1e-10).astype(np.float64)
    moved = (w[..., None] * disp[near]).sum(1) / w.sum(1, keepdims=True)
    # fade beyond the face: the landmark spacing says how far from a landmark a point on the face can be
    if len(src) > 1:
        s2 = ((src[:, None, :] - src[None, :, :]) ** 2).sum(-1)
        np.fill_diagonal(s2, np.inf)
        inside = float(np.sqrt(s2.min(1)).max())
    else:
        inside = 0.0
    dmin = np.sqrt(dn.min(1))
    fade = np.clip(1.0 - np.maximum(dmin - inside, 0.0) / margin_px, 0.0, 1.0)
    return pts + moved * fade[:, None]
