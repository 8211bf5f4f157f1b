"""Sample data shipped with the package: the public-domain photo the demo and examples use."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["astronaut", "ASTRONAUT_PATH"]

#: NASA's portrait of Eileen Collins, public domain (see ``synth/data/README.md``).
ASTRONAUT_PATH = Path(__file__).resolve().parent / "data" / "astronaut.png"


def astronaut() -> np.ndarray:
    """[512, 512, 3] uint8 RGB: the demo photo (the same pixels as ``skimage.data.astronaut()``).

    Example:
        >>> astronaut().shape
        (512, 512, 3)
    """
    from PIL import Image

    with Image.open(ASTRONAUT_PATH) as im:
        return np.asarray(im.convert("RGB")).copy()
