"""Face model kernel: expression blendshapes and the rigid pose applied in one pass over the vertices.

The compiled twin of `FaceModel.reconstruct`'s torch ops for the CPU when nothing requires grad:
only the blendshapes with a nonzero weight are read (a target sets a dozen or two of the 53), and
the [V, 3] x [3, 3] rotation (a slow K = 3 BLAS product) is done in the same loop.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["posed_vertices"]


@njit(cache=True, nogil=True, error_model="numpy")
def posed_vertices(shape, deltas, weights, rotation, translation, out):
    """out [V, 3] = rotation @ (shape + sum_s weights[s] deltas[s]) + translation, per vertex.

    Args:
        shape: [V * 3] float32 identity shape (model space, cm).
        deltas: [S, V * 3] float32 expression blendshapes.
        weights: [S] float32 expression weights; zero weights are skipped (adding 0 changes nothing).
        rotation: [3, 3] float32 model -> camera rotation; translation: [3] float32 (cm).
        out: [V, 3] float32 camera-space vertices.
    """
    offset = np.zeros(shape.shape[0], dtype=np.float32)
    for s in range(deltas.shape[0]):
        w = weights[s]
        if w != 0.0:
            for i in range(offset.shape[0]):
                offset[i] += w * deltas[s, i]
    for v in range(out.shape[0]):
        x = shape[3 * v] + offset[3 * v]
        y = shape[3 * v + 1] + offset[3 * v + 1]
        z = shape[3 * v + 2] + offset[3 * v + 2]
        for r in range(3):
            out[v, r] = x * rotation[r, 0] + y * rotation[r, 1] + z * rotation[r, 2] + translation[r]
