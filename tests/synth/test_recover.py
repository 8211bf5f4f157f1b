"""One failed fit must not spoil the detector for the items after it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from affectsynth.recover import reset_detector


def test_one_bad_image_does_not_break_the_detector_and_reset_rebuilds_it():
    """MediaPipe's graph stayed broken after one 0x0 image; the torch detector refuses it and goes on,
    and `reset_detector` (what the engine calls after any failed fit) gives a fresh detector."""
    import skimage.data

    from affectsynth.synthesizer import Synthesizer

    face = np.asarray(Image.fromarray(skimage.data.astronaut()[:320, 96:416]).resize((160, 160)))
    s = Synthesizer()
    with pytest.raises(ValueError, match="empty"):
        s.fit(np.zeros((0, 0, 3), np.uint8))
    assert len(s.fit(face)) == 1
    before = s.detector
    reset_detector(s)
    assert s.detector is not before and len(s.fit(face)) == 1
    reset_detector(object())  # anything without a detector: a no-op
