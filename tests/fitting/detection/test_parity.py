"""The torch port against MediaPipe's own output on the dev photos.

CI compares with `tests/fitting/data/mediapipe_reference.npz` (recorded by
`scripts/record_detection_reference.py` from MediaPipe 0.10.21); `test_live_mediapipe` compares
with an installed mediapipe directly and skips without it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from affectsynth.fitting import TorchFaceDetector

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "mediapipe_reference.npz"
SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"


def _rgb(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def reference() -> dict:
    with np.load(REFERENCE, allow_pickle=False) as z:
        return {"meta": json.loads(str(z["meta"])), **{k: z[k] for k in z.files if k != "meta"}}


@pytest.fixture(scope="module")
def torch_faces(dev_photos, reference) -> dict:
    det = TorchFaceDetector()
    names = sorted(reference["meta"]["photos"])
    faces = det.detect_batch([_rgb(dev_photos / n) for n in names])
    return dict(zip(names, faces))


def _match(ref_boxes: np.ndarray, faces) -> list:
    """For each reference face, the torch face with the nearest box centre."""
    centres = np.array([[(f.bbox[0] + f.bbox[2]) / 2, (f.bbox[1] + f.bbox[3]) / 2] for f in faces])
    out = []
    for b in ref_boxes:
        c = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
        out.append(faces[int(np.argmin(np.linalg.norm(centres - c, axis=1)))])
    return out


def test_same_faces_found(reference, torch_faces):
    """Every photo: the same number of faces (24 of 24 in the bald_guys collage), at the same places."""
    assert reference["meta"]["photos"]["bald_guys.jpg"] == 24
    for name, n in reference["meta"]["photos"].items():
        faces = torch_faces[name]
        assert len(faces) == n, f"{name}: MediaPipe found {n} faces, the port {len(faces)}"
        boxes = reference[f"{Path(name).stem}/bbox"]
        for b, f in zip(boxes, _match(boxes, faces)):
            size = np.sqrt((b[2] - b[0]) * (b[3] - b[1]))
            assert np.abs(np.array(f.bbox) - b).max() < 0.05 * size, f"{name}: face box {f.bbox} vs MediaPipe {b}"


def test_landmarks_match(reference, torch_faces):
    """Landmarks within 0.5 px median per face; whole-set median well below that."""
    medians = []
    for name in reference["meta"]["photos"]:
        key = Path(name).stem
        for pts, depth, f in zip(reference[f"{key}/points"], reference[f"{key}/depth"],
                                 _match(reference[f"{key}/bbox"], torch_faces[name])):
            d = np.linalg.norm(f.points - pts, axis=1)
            assert np.median(d) < 0.5, f"{name}: median landmark difference {np.median(d):.3f} px"
            assert d.max() < 0.05 * f.interocular + 1.0, f"{name}: worst landmark {d.max():.2f} px off"
            assert np.median(np.abs(f.depth - depth)) < 1.0
            medians.append(np.median(d))
    assert np.median(medians) < 0.1


def test_live_mediapipe(dev_photos):
    """Direct comparison with installed mediapipe (the `parity` extra) on two photos."""
    pytest.importorskip("mediapipe", reason="needs mediapipe: pip install -e '.[parity]'")
    sys.path.insert(0, str(SCRIPTS))
    try:
        from mediapipe_reference import ReferenceMediaPipeDetector
    finally:
        sys.path.remove(str(SCRIPTS))
    ref, port = ReferenceMediaPipeDetector(), TorchFaceDetector()
    for name in ("Tom_Cruise_avp_2014_4.jpg", "2008_004176.jpg"):
        img = _rgb(dev_photos / name)
        a, b = ref.detect(img), port.detect(img)
        assert len(a) == len(b)
        for fa, fb in zip(a, _match(np.array([f.bbox for f in a]), b)):
            assert np.median(np.linalg.norm(fa.points - fb.points, axis=1)) < 0.5
    ref.close()
