"""Reading 68-point landmark annotations in dlib's XML format (imglab; the iBUG 300-W layout)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["AnnotatedFace", "read_dlib_landmarks"]


@dataclass(frozen=True)
class AnnotatedFace:
    """One annotated face.

    Attributes:
        image: the image file name, as written in the XML (relative to the XML's folder).
        width, height: the image size the XML states (0 when absent).
        points: [68, 2] float64 continuous pixel coordinates (dlib's integer pixel indices + 0.5,
            the pixel centres), iBUG order.
    """

    image: str
    width: int
    height: int
    points: np.ndarray


def read_dlib_landmarks(path: str | Path) -> list[AnnotatedFace]:
    """Every face with all 68 parts in a dlib/imglab XML file (faces with fewer parts are left out).

    Raises:
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_dlib_landmarks: no such file '{path}'")
    text = path.read_text(encoding="latin-1")
    out = []
    for m in re.finditer(r"<image file='([^']+)'([^>]*)>(.*?)</image>", text, re.S):
        attrs = dict(re.findall(r"(\w+)='(\d+)'", m.group(2)))
        for box in re.findall(r"<box[^>]*>(.*?)</box>", m.group(3), re.S):
            parts = re.findall(r"<part name='(\d+)' x='(-?\d+)' y='(-?\d+)'/>", box)
            if len(parts) != 68:
                continue
            pts = np.zeros((68, 2))
            for name, x, y in parts:
                pts[int(name)] = (float(x) + 0.5, float(y) + 0.5)
            out.append(AnnotatedFace(m.group(1), int(attrs.get("width", 0)), int(attrs.get("height", 0)), pts))
    return out
