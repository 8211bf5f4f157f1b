"""Fit accuracy on real photos: the fitted model's iBUG-68 points against the dev photos' annotations.

The annotations (``../shared/assets/dev-photos/*_with_face_landmarks.xml``) are dlib's 68-point
predictions on PASCAL VOC photos, an independent detector; the fit uses MediaPipe's landmarks. The
error is the normalised mean error (NME, % of the outer-eye-corner distance) of the model's 68
embedded points projected with the fit, on every annotated face that the detector found.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from affectsynth.fitting import EYE_CORNERS, FaceModel, fit_each, fit_image, fit_images, get_detector
from affectsynth.fitting.annotations import read_dlib_landmarks
from affectsynth.render.camera import project_points

pytestmark = pytest.mark.slow


def _annotations(folder: Path) -> list[tuple[str, np.ndarray]]:
    """(image file, [68, 2] points in continuous pixel coordinates) per annotated face."""
    return [(f.image, f.points) for xml in sorted(folder.glob("*_with_face_landmarks.xml"))
            for f in read_dlib_landmarks(xml)]


@pytest.fixture(scope="module")
def errors(dev_photos) -> tuple[list[float], int]:
    """NME (% IOD) per annotated face found, and the number of annotated faces."""
    from affectsynth.images import load_image

    model, detector = FaceModel.default(), get_detector("mediapipe")
    notes = _annotations(dev_photos)
    fits_by_file = {f: fit_image(load_image(dev_photos / f), model=model, detector=detector)
                    for f in sorted({f for f, _ in notes})}
    out = []
    for file, truth in notes:
        centre = truth.mean(0)
        for fit in fits_by_file[file]:
            x0, y0, x1, y1 = fit.bbox
            if x0 <= centre[0] <= x1 and y0 <= centre[1] <= y1:
                pts = model.landmark_points(model.reconstruct(fit)[None], "ibug68")[0]
                pred = project_points(pts, fit.camera).numpy()
                a, b = EYE_CORNERS["ibug68"]
                iod = np.linalg.norm(truth[a] - truth[b])
                out.append(100 * float(np.linalg.norm(pred - truth, axis=1).mean()) / iod)
                break
    return out, len(notes)


def test_fit_matches_independent_68_point_annotations(errors):
    nme, n_faces = errors
    assert n_faces >= 40  # the dev photos' annotated faces (43)
    # MediaPipe misses a few tiny or profile faces that dlib annotated (measured: 40 of 43 found)
    assert len(nme) >= 0.85 * n_faces, f"found {len(nme)} of {n_faces} annotated faces"
    # Two detectors disagree by several % IOD on their own (dlib's jaw line sits lower than
    # MediaPipe's face oval, and these are small 40-60 px PASCAL faces): a median under 10% and
    # no face over 20% (measured: median 6.7%, max 14.0% on 40 faces) say the fit lands on the right
    # face with the right shape; a wrong face,
    # a flipped pose or a broken embedding gives 30-100%.
    assert float(np.median(nme)) < 10.0, nme
    assert max(nme) < 20.0, nme


def test_a_face_gets_the_same_fit_in_any_batch(dev_photos):
    """With one torch thread (the batch engine's setting) fitting the faces of several photos in one
    batch gives every face the bits it gets alone: the engines batch photos as they like
    (`affectsynth.fitting.fit_each`), and a photo's outputs must not depend on its batch."""
    model, detector = FaceModel.default(), get_detector("torch")
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(dev_photos.glob("*.jpg"))]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = [fit_image(p, model=model, detector=detector, max_faces=1) for p in photos]
        together = fit_images(photos, model=model, detector=detector, max_faces=1)
        pairs = fit_each(photos[:2], model=model, detector=detector, max_faces=1) + \
            fit_each(photos[2:], model=model, detector=detector, max_faces=1)
    finally:
        torch.set_num_threads(threads)
    assert sum(len(f) for f in alone) >= len(photos) - 1  # dogs.jpg holds none
    for batch in (together, pairs):
        for a, b in zip(alone, batch):
            assert len(a) == len(b)
            for x, y in zip(a, b):
                for name in ("identity", "expression", "rotation", "translation", "residuals", "landmarks"):
                    np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)
