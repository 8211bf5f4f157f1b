"""`SynthLabels.to_row`'s fast manifest fields against the plain json/numpy they replace, on real faces (dev photos)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from affectsynth.result import landmarks_json
from affectsynth.synthesizer import Synthesizer

PHOTOS = ("2008_001009", "2008_002470", "Tom_Cruise_avp_2014_4", "bald_guys")


def _reference_landmarks_json(points) -> str:
    """What the manifest wrote before: json of the points rounded to 0.01 px."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2).round(2)
    return json.dumps(pts.tolist(), separators=(",", ":")) if len(pts) else ""


@pytest.fixture(scope="module")
def real_landmarks(dev_photos) -> list[np.ndarray]:
    """Detected landmarks of the dev photos' largest faces, in the photo and in the 256 px crop."""
    synth = Synthesizer()
    out = []
    for name in PHOTOS:
        image = np.asarray(Image.open(dev_photos / f"{name}.jpg").convert("RGB"))
        fit = synth.fit(image)[0]
        out.append(fit.landmarks.numpy())
        out.append(synth.crop_to_face(image, fit, 256)[1].landmarks.numpy())
    return out


def test_landmarks_json_matches_json_on_real_faces(real_landmarks):
    for pts in real_landmarks:
        assert pts.shape == (468, 2)
        assert landmarks_json(pts) == _reference_landmarks_json(pts)
        shifted = pts.astype(np.float64) - pts.mean(axis=0)  # negative coordinates, points near 0
        assert landmarks_json(shifted) == _reference_landmarks_json(shifted)
    assert json.loads(landmarks_json(real_landmarks[0])) == np.round(real_landmarks[0].astype(np.float64), 2).tolist()


def test_landmarks_json_signs_zeros_and_fallbacks():
    """-0.0 keeps its sign (x in (-0.005, 0) rounds to it), whole and tenth values keep one
    decimal, huge and non-finite coordinates go through json."""
    pts = np.array([[-0.004, 0.0], [-0.0, 3.0], [12.5, 7.1], [0.05, -0.995], [1e6, -123456.789], [2e15, 1.0]])
    assert landmarks_json(pts) == _reference_landmarks_json(pts)
    assert landmarks_json(pts[:4]) == "[[-0.0,0.0],[-0.0,3.0],[12.5,7.1],[0.05,-1.0]]"  # -99.5 hundredths: half to even
    for odd in ([[np.nan, 1.0]], [[np.inf, -np.inf]], [[1e18, 2.0]]):
        assert landmarks_json(np.array(odd)) == _reference_landmarks_json(np.array(odd))
    assert landmarks_json(np.zeros((0, 2))) == ""
