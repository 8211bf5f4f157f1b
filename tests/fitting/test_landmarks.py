"""The `Landmarks` type and the (torch) MediaPipe detector on real photos (few detector calls: each costs 50-300 ms)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from affectsynth.fitting import Landmarks, MediaPipeDetector, TorchFaceDetector, detectors, get_detector


def _rgb(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def detector():
    det = MediaPipeDetector()
    yield det
    det.close()


@pytest.fixture(scope="module")
def tom(dev_photos) -> np.ndarray:
    return _rgb(dev_photos / "Tom_Cruise_avp_2014_4.jpg")


@pytest.fixture(scope="module")
def tom_faces(detector, tom) -> list[Landmarks]:
    return detector.detect(tom)


def test_single_large_face(tom, tom_faces):
    assert len(tom_faces) == 1
    face = tom_faces[0]
    h, w = tom.shape[:2]
    assert face.kind == "mediapipe468" and face.detector == "mediapipe"
    assert face.points.shape == (478, 2) and face.points.dtype == np.float32
    assert face.depth is not None and face.depth.shape == (478,)
    assert 0.5 <= face.score <= 1.0
    x0, y0, x1, y1 = face.bbox
    # a large face in the middle of a 565 x 800 portrait
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    assert 300 < x1 - x0 < w and 350 < y1 - y0 < h and face.size > 300
    assert x0 < w / 2 < x1 and y0 < h / 2 < y1
    # every point, iris included, inside the face box (2 px tolerance for the iris points)
    pts = face.points
    assert (pts[:, 0] > x0 - 2).all() and (pts[:, 0] < x1 + 2).all()
    assert (pts[:, 1] > y0 - 2).all() and (pts[:, 1] < y1 + 2).all()
    # eye corners: the subject's right eye is on the image's left; eyes above the mouth, level-ish
    right_outer, left_outer = face.eye_corners()
    np.testing.assert_array_equal(right_outer, pts[33])
    assert right_outer[0] < pts[133][0] < pts[362][0] < left_outer[0]
    assert abs(right_outer[1] - left_outer[1]) < 0.15 * face.interocular
    assert 0.35 * (x1 - x0) < face.interocular < 0.8 * (x1 - x0)
    mouth = pts[13]
    assert mouth[1] > max(right_outer[1], left_outer[1]) + 0.5 * face.interocular
    # iris centres (468, 473) lie between their eye's corners
    assert pts[33][0] < pts[468][0] < pts[133][0]
    assert pts[362][0] < pts[473][0] < pts[263][0]


def test_many_faces_sorted_by_size(detector, dev_photos):
    faces = detector.detect(_rgb(dev_photos / "bald_guys.jpg"))
    assert len(faces) >= 10  # a collage of about 30 faces
    sizes = [f.size for f in faces]
    assert sizes == sorted(sizes, reverse=True)
    assert all(f.points.shape == (478, 2) for f in faces)
    centres = np.array([[(f.bbox[0] + f.bbox[2]) / 2, (f.bbox[1] + f.bbox[3]) / 2] for f in faces])
    dist = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(len(faces)) * 1e9
    assert dist.min() > 0.3 * min(sizes)  # no face reported twice


def test_no_face(detector, dev_photos):
    assert detector.detect(_rgb(dev_photos / "dogs.jpg")) == []


def test_grayscale_photo_and_pickled_detector(detector, tom, tom_faces):
    """A pickled detector (as sent to dataloader workers) rebuilds its graphs and finds the face in gray."""
    clone = pickle.loads(pickle.dumps(detector))
    assert clone._pipeline is None and clone.max_faces == detector.max_faces
    gray = np.asarray(Image.fromarray(tom).convert("L"))
    faces = clone.detect(np.stack([gray] * 3, axis=-1))
    clone.close()
    assert len(faces) == 1
    diff = np.linalg.norm(faces[0].points[:468] - tom_faces[0].points[:468], axis=1).mean()
    assert diff < 0.03 * tom_faces[0].interocular


def test_wrong_inputs(detector):
    bad = [
        np.zeros((64, 64, 3), np.float32),  # float image
        np.zeros((64, 64), np.uint8),  # 2-D
        np.zeros((64, 64, 4), np.uint8),  # RGBA
        [[0, 0, 0]],  # not an array
    ]
    for image in bad:
        with pytest.raises(ValueError, match="uint8 RGB"):
            detector.detect(image)
    with pytest.raises(ValueError, match="max_faces"):
        MediaPipeDetector(max_faces=0)
    with pytest.raises(ValueError, match="min_confidence"):
        MediaPipeDetector(min_confidence=1.5)
    for empty in (np.zeros((0, 0, 3), np.uint8), np.zeros((0, 50, 3), np.uint8)):
        with pytest.raises(ValueError, match="empty"):
            detector.detect(empty)
    assert detector.detect(np.zeros((1, 1, 3), np.uint8)) == []  # too small to hold a face: none found
    assert [len(f) for f in detector.detect_batch([np.zeros((1, 7, 3), np.uint8), np.zeros((1, 1, 3), np.uint8)])] == [0, 0]


def test_empty_image_does_not_poison_later_calls(detector, tom, tom_faces):
    """MediaPipe's graph broke for the rest of the process after one 0x0 image; the port must not."""
    with pytest.raises(ValueError, match="empty"):
        detector.detect_batch([tom, np.zeros((0, 0, 3), np.uint8)])
    again = detector.detect(tom)
    assert len(again) == 1
    np.testing.assert_array_equal(again[0].points, tom_faces[0].points)


def test_batch_matches_single_calls(detector, tom, tom_faces, dev_photos):
    dogs = _rgb(dev_photos / "dogs.jpg")
    batch = detector.detect_batch([tom, dogs, tom])
    assert [len(b) for b in batch] == [1, 0, 1]
    for faces in (batch[0], batch[2]):  # (several torch threads: bits differ with the batch's size)
        np.testing.assert_allclose(faces[0].points, tom_faces[0].points, atol=0.02)
    assert detector.detect_batch([]) == []


def _same_faces(a: list[Landmarks], b: list[Landmarks]) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(u.points, v.points) and np.array_equal(u.depth, v.depth) and u.bbox == v.bbox
        and u.score == v.score and u.faces_found == v.faces_found for u, v in zip(a, b))


@pytest.fixture
def one_thread():
    """One torch thread, as the batch engine runs (with several, torch splits a batch by its size)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("max_faces", [1, None])
def test_a_photo_gets_the_same_bits_in_any_batch(detector, dev_photos, max_faces, one_thread):
    """The batch engine detects several photos at once (`process_images`): a photo's landmarks,
    and so its outputs, must be those it gets alone, whichever photos and faces share the batch
    (group photos mesh several faces per network call; the mesh heads' matrix products would sum
    in another order for several samples than for one)."""
    photos = [_rgb(p) for p in sorted(dev_photos.glob("*.jpg"))]
    alone = [detector.detect(p, max_faces=max_faces) for p in photos]
    if max_faces is None:
        assert sum(len(f) for f in alone) > len(photos)  # group photos: several faces meshed together
    for size in (2, 3, len(photos)):
        together = [faces for k in range(0, len(photos), size)
                    for faces in detector.detect_batch(photos[k:k + size], max_faces=max_faces)]
        bad = [p.name for p, a, t in zip(sorted(dev_photos.glob("*.jpg")), alone, together) if not _same_faces(a, t)]
        assert not bad, (size, bad)


def test_landmarks_type():
    pts = np.random.default_rng(0).uniform(10, 90, (68, 2))
    lm = Landmarks.from_points(pts, "ibug68")
    assert lm.points.dtype == np.float32 and lm.detector == "user"
    assert lm.bbox == pytest.approx((pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()), abs=1e-4)
    assert lm.interocular == pytest.approx(float(np.linalg.norm(pts[36] - pts[45])), rel=1e-5)
    assert Landmarks.from_points(np.zeros((468, 2)), "mediapipe468").points.shape == (468, 2)
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        Landmarks(points=np.zeros((68, 3)), kind="ibug68", bbox=(0, 0, 1, 1))
    with pytest.raises(ValueError, match="kind must be one of"):
        Landmarks.from_points(pts, "dlib5")
    with pytest.raises(ValueError, match="needs"):
        Landmarks.from_points(np.zeros((470, 2)), "mediapipe468")
    nan = pts.copy()
    nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Landmarks.from_points(nan, "ibug68")


def test_detector_registry():
    assert "mediapipe" in detectors
    det = get_detector("mediapipe", max_faces=2)
    assert isinstance(det, MediaPipeDetector) and det.max_faces == 2 and det.name == "mediapipe"
    assert MediaPipeDetector is TorchFaceDetector and isinstance(get_detector("torch"), TorchFaceDetector)
    with pytest.raises(ValueError, match="expected one of"):
        get_detector("dlib")


def test_located_area_bound_uses_keypoints_only_where_fitted():
    """`_located_area_max`: the keypoint bound where the keypoint ratios lie in the fitted ranges
    (and it is the lower), else the located box's `LOCATED_TO_LANDMARK_AREA_MAX` bound."""
    from affectsynth.fitting.detection.pipeline import LocatedFace
    from affectsynth.fitting.landmarks import LOCATED_TO_LANDMARK_AREA_MAX, _located_area_max

    rect = np.zeros((1, 5), np.float32)
    # a face in a 40 x 40 box: eyes 16 px apart, ears 30 px apart
    kp = np.array([[12, 15], [28, 15], [20, 22], [20, 30], [5, 18], [35, 18]], np.float32)
    box_bound = 1600 * LOCATED_TO_LANDMARK_AREA_MAX
    fitted = _located_area_max(LocatedFace(rect, 1600.0, kp))
    assert 0 < fitted < box_bound
    assert _located_area_max(LocatedFace(rect, 1600.0, kp * 2)) == box_bound  # ratios outside the fit: box bound
    assert _located_area_max(LocatedFace(rect, 1600.0, np.zeros((6, 2), np.float32))) == box_bound  # degenerate
    assert _located_area_max(LocatedFace(rect, 1600.0)) == box_bound  # no keypoints
    assert _located_area_max(LocatedFace(rect, 6400.0, kp * 2)) == fitted * 4  # scale-free
