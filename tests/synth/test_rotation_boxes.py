"""Under an extra head rotation the output's landmarks and box are those of the turned face in the
written image: detected again on the output, the face agrees with the labels as well as without a turn.
"""

from __future__ import annotations

import numpy as np
import pytest

from affectsynth.blendshapes import Expression
from affectsynth.sample_data import astronaut
from affectsynth.synthesizer import Synthesizer


@pytest.fixture(scope="module")
def setup():
    synth = Synthesizer()
    img = astronaut()
    fit = synth.fit(img)[0]
    crop, crop_fit = synth.crop_to_face(img, fit, 256)  # as `generate --size 256` does
    return synth, crop, crop_fit


def _redetected(synth: Synthesizer, image: np.ndarray) -> np.ndarray:
    """[468, 2] landmarks the detector finds on an output image (its largest face)."""
    fits = synth.fit(image)
    assert fits, "no face detected on the output"
    return fits[0].landmarks.detach().cpu().numpy()[:468].astype(np.float64)


def _median_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.median(np.linalg.norm(a - b, axis=1)))


def test_landmarks_and_box_follow_a_turned_head(setup):
    synth, crop, fit = setup
    target = Expression("happiness", 0.6)
    still = synth.synthesize(crop, target, fit=fit, head_rotation_deg=(0.0, 0.0))
    turned = synth.synthesize(crop, target, fit=fit, head_rotation_deg=(15.0, 0.0))
    assert turned.labels.pose_deg[0] - still.labels.pose_deg[0] == pytest.approx(15.0, abs=0.5)

    found_still = _redetected(synth, still.image)
    found_turned = _redetected(synth, turned.image)
    err_still = _median_err(found_still, still.labels.landmarks)
    err_turned = _median_err(found_turned, turned.labels.landmarks)
    # the turn really moved the landmarks: unturned labels would be off on the turned image
    stale = _median_err(found_turned, still.labels.landmarks)
    iod = float(np.linalg.norm(turned.labels.landmarks[33] - turned.labels.landmarks[263]))
    print(f"median landmark error: unturned {err_still:.2f} px, turned {err_turned:.2f} px, "
          f"turned image vs unturned labels {stale:.2f} px (eye distance {iod:.0f} px)")
    assert err_turned <= max(2.0 * err_still, 0.03 * iod), (err_still, err_turned)
    assert stale > 1.5 * err_turned, (stale, err_turned)

    # the box: the labels' box, the output fit's box, and both contain the face found on the output
    box = turned.labels.face_box
    assert box == pytest.approx(turned.fit.bbox)
    x0, y0, x1, y1 = box
    margin = 0.05 * (x1 - x0)
    inside = ((found_turned[:, 0] >= x0 - margin) & (found_turned[:, 0] <= x1 + margin)
              & (found_turned[:, 1] >= y0 - margin) & (found_turned[:, 1] <= y1 + margin))
    assert inside.mean() >= 0.98, f"{(~inside).sum()} detected landmarks outside the output box {box}"
    found_box = (found_turned[:, 0].min(), found_turned[:, 1].min(), found_turned[:, 0].max(), found_turned[:, 1].max())
    assert np.abs(np.subtract(found_box, box)).max() <= 0.08 * (x1 - x0), (found_box, box)
    # the output fit carries the output's landmarks, not the photo's detection
    assert np.allclose(turned.fit.landmarks.cpu().numpy(), turned.labels.landmarks, atol=0.01)
    assert turned.fit.landmark_kind == "mediapipe468"


def test_output_crop_of_a_turned_face_is_centred_on_it(setup):
    """`crop_to_face` on an output (as `verify` does) uses the output fit's box: the turned face."""
    synth, crop, fit = setup
    turned = synth.synthesize(crop, Expression("surprise", 0.8), fit=fit, head_rotation_deg=(-15.0, 8.0))
    again, again_fit = synth.crop_to_face(turned.image, turned.fit, 192)
    found = _redetected(synth, again)
    centre = found.mean(0)
    assert np.linalg.norm(centre - 96.0) < 0.1 * 192, centre
    assert _median_err(found, again_fit.landmarks.cpu().numpy()) < 0.04 * 192
