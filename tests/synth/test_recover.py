"""One failed fit must not spoil the detector for the items after it (a real MediaPipe graph)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PIL import Image

if importlib.util.find_spec("affectsynth.synthesizer") is None:
    pytest.skip("needs affectsynth.synthesizer", allow_module_level=True)

from affectsynth.recover import reset_detector  # noqa: E402


def test_a_detector_broken_by_one_image_is_rebuilt():
    import skimage.data

    from affectsynth.synthesizer import Synthesizer

    face = np.asarray(Image.fromarray(skimage.data.astronaut()[:320, 96:416]).resize((160, 160)))
    s = Synthesizer()
    with pytest.raises(RuntimeError):
        s.fit(np.zeros((0, 0, 3), np.uint8))  # MediaPipe's graph fails ...
    with pytest.raises(RuntimeError, match="Graph has errors"):
        s.fit(face)  # ... and stays failed
    reset_detector(s)
    assert len(s.fit(face)) == 1
    reset_detector(object())  # anything without a detector: a no-op
