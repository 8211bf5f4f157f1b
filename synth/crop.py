"""Square face crops: the box geometry shared by the engine, the grid and the Synthesizer."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["face_square_box", "crop_square"]


def face_square_box(bbox: Sequence[float], *, scale: float = 1.6) -> tuple[int, int, int]:
    """(x0, y0, side) of the square centred on a face box, side = ``scale`` x its longer side.

    Args:
        bbox: (x0, y0, x1, y1) face box in pixels (continuous image coordinates).
        scale: crop side / the box's longer side.
    """
    x0, y0, x1, y1 = (float(v) for v in bbox)
    side = max(scale * max(x1 - x0, y1 - y0), 1.0)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return int(round(cx - side / 2)), int(round(cy - side / 2)), max(1, int(round(side)))


def crop_square(image: np.ndarray, bbox: Sequence[float], size: int, *, scale: float = 1.6) -> np.ndarray:
    """An ``size x size`` crop centred on a face box, resized (Lanczos); black outside the image.

    Args:
        image: [H, W, 3] uint8.
        bbox: (x0, y0, x1, y1) face box in pixels (continuous image coordinates).
        size: output side in pixels.
        scale: crop side = ``scale * max(x1 - x0, y1 - y0)``.

    Returns:
        [size, size, 3] uint8.
    """
    from PIL import Image

    x0, y0, side = face_square_box(bbox, scale=scale)
    window = _square_window(image, x0, y0, side)
    return np.asarray(Image.fromarray(window).resize((size, size), Image.LANCZOS, reducing_gap=3.0))


def _square_window(image: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """[side, side, C] pixels of ``image`` from (x0, y0), black outside it (what PIL's ``crop`` gives),
    cut from the array itself: no copy of the whole photo into a PIL image first."""
    H, W = image.shape[:2]
    if x0 >= 0 and y0 >= 0 and x0 + side <= W and y0 + side <= H:
        return np.ascontiguousarray(image[y0:y0 + side, x0:x0 + side])
    out = np.zeros((side, side, *image.shape[2:]), dtype=image.dtype)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + side, W), min(y0 + side, H)
    if ix1 > ix0 and iy1 > iy0:
        out[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = image[iy0:iy1, ix0:ix1]
    return out
